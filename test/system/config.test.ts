import { randomBytes } from "node:crypto";
import path from "node:path";
import { redactSecrets } from "../../src/base/redact";
import { ConfigError, parseConfig } from "../../src/config/config";
import { DASHBOARD_CLI } from "../support/dashboard";
import { useTestDatabase } from "../support/database";
import { BATCH_CLI, MAIN, ROOT, run, SEED_CLI, STATUS_CLI, seed, startWorker, WORKER_BIN } from "../support/processes";

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
  const db = useTestDatabase({ migrated: false });

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
  const db = useTestDatabase({ migrated: false });

  /** The test database's URL with a password in it (a trust-auth server ignores it). */
  function urlWithPassword(): { url: string; password: string } {
    const url = new URL(db.url);
    if (!url.password) url.password = randomBytes(12).toString("hex");
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
