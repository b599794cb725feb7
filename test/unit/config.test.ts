import { ConfigError, parseConfig } from "../../src/config/config";
import { getCatalog } from "../../src/config/context";
import { runSettings } from "../../workflows/start-run";
import { usersJob } from "../support/jobs";

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

  it("reads sslmode=require and prefer in libpq's meaning, without node-postgres's warning of its own", () => {
    const emitWarning = jest.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    try {
      for (const mode of ["require", "prefer"]) {
        expect(parseConfig({ DATABASE_URL: `postgres://u@db.example.com/app?sslmode=${mode}` }).databaseUrl).toBe(
          `postgres://u@db.example.com/app?sslmode=${mode}&uselibpqcompat=true`,
        );
      }
      expect(emitWarning).not.toHaveBeenCalled();
    } finally {
      emitWarning.mockRestore();
    }
  });
});
