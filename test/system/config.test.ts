import path from "node:path";
import { redactSecrets } from "../../src/base/redact";
import { ConfigError, parseConfig } from "../../src/config/config";
import { getCatalog } from "../../src/config/context";
import { runSettings } from "../../workflows/start-run";
import { DASHBOARD_CLI } from "../support/dashboard";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { BATCH_CLI, MAIN, ROOT, run, SEED_CLI, STATUS_CLI, seed, startWorker, WORKER_BIN } from "../support/processes";

describe("parseConfig", () => {
  it("applies the defaults", () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      // unset: each job's defaults apply (jobs/*.ts)
      chunkSize: undefined,
      rowConcurrency: undefined,
      rowTimeoutMs: undefined,
      maxAttempts: undefined,
      retryRounds: undefined,
      workers: 4,
      claimTimeoutMs: 30_000,
      planTimeoutMs: 120_000,
      shutdownGraceMs: 30_000,
      jobsDir: undefined,
      failRate: 0,
      logLevel: "info",
      logFormat: "auto",
      noColor: false,
    });
    expect(config.podName).toMatch(/-\d+$/);
  });

  it("accepts durations as plain seconds or with a unit, like the original", () => {
    expect(parseConfig({ CLAIM_TIMEOUT_S: "30" }).claimTimeoutMs).toBe(30_000);
    expect(parseConfig({ CLAIM_TIMEOUT_S: "30s" }).claimTimeoutMs).toBe(30_000);
    expect(parseConfig({ SHUTDOWN_GRACE_S: "1.5m" }).shutdownGraceMs).toBe(90_000);
    expect(parseConfig({ ROW_TIMEOUT_S: "250ms" }).rowTimeoutMs).toBe(250);
  });

  it("bounds how long a claimed row stays locked from 0.1 s to a minute", () => {
    expect(parseConfig({}).maxLockHoldMs).toBeUndefined();
    expect(parseConfig({ MAX_LOCK_HOLD_S: "0.5" }).maxLockHoldMs).toBe(500);
    expect(parseConfig({ MAX_LOCK_HOLD_S: "100ms" }).maxLockHoldMs).toBe(100);
    expect(() => parseConfig({ MAX_LOCK_HOLD_S: "50ms" })).toThrow("MAX_LOCK_HOLD_S must be at least 0.1s");
    expect(() => parseConfig({ MAX_LOCK_HOLD_S: "2m" })).toThrow("MAX_LOCK_HOLD_S must be at most 60s");
  });

  it("takes PG_DSN, the original's name, when DATABASE_URL is absent", () => {
    expect(parseConfig({ PG_DSN: "postgres://a@b/c" }).databaseUrl).toBe("postgres://a@b/c");
    expect(parseConfig({ PG_DSN: "postgres://a@b/c", DATABASE_URL: "postgres://x@y/z" }).databaseUrl).toBe(
      "postgres://x@y/z",
    );
  });

  it("starts a run with the starter's settings where set, else the job's defaults, rounds from attempts", () => {
    const orders = getCatalog().get("orders-reprice");
    expect(runSettings(parseConfig({}), orders)).toMatchObject({ chunkSize: 5_000, maxAttempts: 2, retryRounds: 1 });
    expect(runSettings(parseConfig({}), usersJob)).toMatchObject({ chunkSize: 10_000, maxAttempts: 3, retryRounds: 2 });
    expect(runSettings(parseConfig({ MAX_ATTEMPTS: "5", CHUNK_SIZE: "7" }), orders)).toMatchObject({
      chunkSize: 7,
      maxAttempts: 5,
      retryRounds: 4,
    });
    expect(runSettings(parseConfig({ MAX_ATTEMPTS: "5", RETRY_ROUNDS: "1" }), usersJob).retryRounds).toBe(1);
  });

  it("reads PROCESS_DELAY_SPREAD: fixed unless set", () => {
    expect(parseConfig({}).processDelaySpread).toBe("fixed");
    expect(parseConfig({ PROCESS_DELAY_SPREAD: "exponential" }).processDelaySpread).toBe("exponential");
  });

  it("reads DATABASE_POOLING (none unless set) and WORKER_DIRECT_DATABASE_URL", () => {
    expect(parseConfig({})).toMatchObject({ pooling: "none", workerDirectDatabaseUrl: undefined });
    expect(
      parseConfig({ DATABASE_POOLING: "transaction", WORKER_DIRECT_DATABASE_URL: "postgres://w@db:5432/app" }),
    ).toMatchObject({ pooling: "transaction", workerDirectDatabaseUrl: "postgres://w@db:5432/app" });
  });

  it("reads LOG_FORMAT, and NO_COLOR when it is set and not empty (https://no-color.org)", () => {
    expect(parseConfig({ LOG_FORMAT: "json" }).logFormat).toBe("json");
    expect(parseConfig({ LOG_FORMAT: "pretty" }).logFormat).toBe("pretty");
    expect(parseConfig({ NO_COLOR: "1" }).noColor).toBe(true);
    expect(parseConfig({ NO_COLOR: "" }).noColor).toBe(false);
  });

  it("reads a rate limit for every job, or none at all", () => {
    expect(parseConfig({})).toMatchObject({ rateLimitPerSecond: undefined, rateLimitBurst: undefined });
    expect(parseConfig({ RATE_LIMIT_PER_S: "12.5", RATE_LIMIT_BURST: "40" })).toMatchObject({
      rateLimitPerSecond: 12.5,
      rateLimitBurst: 40,
    });
    expect(parseConfig({ RATE_LIMIT_PER_S: "off" }).rateLimitPerSecond).toBe("off");
  });

  it.each([
    [{ CHUNK_SIZE: "abc" }, 'CHUNK_SIZE must be a whole number from 1 to 1000000 (got "abc")'],
    [{ CHUNK_SIZE: "0" }, "CHUNK_SIZE must be a whole number from 1 to 1000000"],
    [{ WORKERS: "-2" }, "WORKERS must be a whole number"],
    [{ CLAIM_TIMEOUT_S: "soon" }, 'CLAIM_TIMEOUT_S must be a duration such as "30" or "30s"'],
    [{ CLAIM_TIMEOUT_S: "0" }, 'CLAIM_TIMEOUT_S must be at least 1s (got "0")'],
    [{ CLAIM_TIMEOUT_S: "500ms" }, "CLAIM_TIMEOUT_S must be at least 1s"],
    [{ PLAN_TIMEOUT_S: "0" }, 'PLAN_TIMEOUT_S must be at least 1s (got "0")'],
    [{ FAIL_RATE: "1.5" }, "FAIL_RATE must be a number from 0 to 1"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL must be one of"],
    [{ LOG_FORMAT: "yaml" }, 'LOG_FORMAT must be one of auto, json, pretty (got "yaml")'],
    [{ PROCESS_DELAY_SPREAD: "normal" }, 'PROCESS_DELAY_SPREAD must be one of fixed, exponential (got "normal")'],
    [{ MAX_ATTEMPTS: "101" }, "MAX_ATTEMPTS must be a whole number from 1 to 100"],
    [{ RATE_LIMIT_PER_S: "0" }, 'RATE_LIMIT_PER_S must be a number of records a second above 0 (got "0")'],
    [{ RATE_LIMIT_PER_S: "fast" }, 'RATE_LIMIT_PER_S must be a number of records a second above 0, or "off"'],
    [{ RATE_LIMIT_BURST: "0.5" }, 'RATE_LIMIT_BURST must be at least 1 (got "0.5")'],
    [{ DATABASE_POOLING: "statement" }, 'DATABASE_POOLING must be one of none, session, transaction (got "statement")'],
  ])("rejects %j", (env, message) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(message);
  });

  it("names the variable but never echoes a connection string", () => {
    const attempt = () => parseConfig({ PG_DSN: "mysql://admin:hunter2@db/app" });
    expect(attempt).toThrow("PG_DSN must be a postgres:// or postgresql:// connection string");
    expect(attempt).not.toThrow(/hunter2/);
  });
});

describe("a connection string node-postgres cannot read", () => {
  const MALFORMED = "postgresql://u:hunter2@[::1:1/x";
  const JOBS_CLI = path.join(ROOT, "dist/cli/jobs.js");

  it("is refused as configuration, naming the variable and never the password", () => {
    for (const name of ["DATABASE_URL", "PG_DSN", "MONITOR_DATABASE_URL", "WORKER_DIRECT_DATABASE_URL"]) {
      const attempt = () => parseConfig({ [name]: MALFORMED });
      expect(attempt).toThrow(
        new ConfigError(`${name} is not a connection string node-postgres can read (Invalid URL)`),
      );
    }
  });

  const node = (script: string, ...args: string[]) => [process.execPath, script, ...args];
  it.each<[string, string[], Record<string, string>]>([
    ["seed", node(SEED_CLI, "enqueue"), {}],
    ["the worker", [WORKER_BIN, "--once"], {}],
    ["status", node(STATUS_CLI), {}],
    ["batch", node(BATCH_CLI, "history", "nightly"), {}],
    ["jobs", node(JOBS_CLI, "check"), {}],
    ["the dashboard", node(DASHBOARD_CLI), {}],
    ["the dashboard's MONITOR_DATABASE_URL", node(DASHBOARD_CLI), { MONITOR_DATABASE_URL: MALFORMED }],
    ["npm start", node(MAIN, "--rows", "10"), {}],
  ])("makes %s exit 2 with one line, no stack and no password", async (_name, [command, ...args], env) => {
    const monitor = env.MONITOR_DATABASE_URL !== undefined;
    const url = monitor ? "postgres://postgres@127.0.0.1:1/postgres" : MALFORMED;
    const result = await run(command as string, args, { DATABASE_URL: url, ...env });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `configuration error: ${monitor ? "MONITOR_DATABASE_URL" : "DATABASE_URL"} ` +
        "is not a connection string node-postgres can read (Invalid URL)\n",
    );
    expect(result.stdout).toBe("");
  });
});

describe("a bad value in a real process", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it.each([
    ["CHUNK_SIZE", "lots"],
    ["SHUTDOWN_GRACE_S", "30x"],
    ["WORKERS", "0"],
    // zero would turn the timeout off, not make it instant: refused, not taken silently
    ["CLAIM_TIMEOUT_S", "0"],
  ])("%s=%s makes the seed tool exit 2 with one line, writing nothing", async (name, value) => {
    const result = await seed(["schema"], { DATABASE_URL: db.url, [name]: value });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^configuration error: ${name} `));
    expect(result.stderr).not.toMatch(/\bat .+:\d+:\d+/);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(rows[0].n).toBe(0);
  });

  it("makes graphile-worker exit 2 the same way", async () => {
    const result = await startWorker(["--once"], { DATABASE_URL: db.url, MAX_ATTEMPTS: "many" }).exited;
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toEqual([
      'configuration error: MAX_ATTEMPTS must be a whole number from 1 to 100 (got "many")',
    ]);
  });

  it("requires a database where one is needed", async () => {
    const result = await seed(["schema"], {});
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe("configuration error: DATABASE_URL (or PG_DSN) must be set");
  });
});

describe("secrets in logs", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  /** The test database's URL with a password in it (a trust-auth server ignores it). */
  function urlWithPassword(): { url: string; password: string } {
    const url = new URL(db.url);
    if (!url.password) url.password = "Pa55-w0rd-never-logged";
    return { url: url.toString(), password: decodeURIComponent(url.password) };
  }

  it("keeps the password out of every log line of a working command", async () => {
    const { url, password } = urlWithPassword();
    const result = await seed(["schema"], { DATABASE_URL: url, LOG_LEVEL: "trace" });
    expect(result.code).toBe(0);
    expect(result.stderr.length).toBeGreaterThan(0);
    expect(result.stderr + result.stdout).not.toContain(password);
  });

  it("keeps it out of the error of a failing connection", async () => {
    const { url, password } = urlWithPassword();
    const unreachable = new URL(url);
    unreachable.port = "1";
    const result = await seed(["schema"], { DATABASE_URL: unreachable.toString(), LOG_LEVEL: "trace" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ECONNREFUSED");
    expect(result.stderr).not.toContain(password);
  });

  it("redacts connection strings that appear inside messages", () => {
    expect(redactSecrets("connect to postgres://app:hunter2@db:5432/x failed")).toBe(
      "connect to postgres://app:***@db:5432/x failed",
    );
    expect(redactSecrets("host=db password='hunter 2' user=app")).toBe("host=db password=*** user=app");
  });
});
