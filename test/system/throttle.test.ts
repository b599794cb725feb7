import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { defineJob } from "#pg-batch";
import { freePort } from "../../src/base/free-port";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { HealthWatch } from "../../src/health/health-watch";
import { workerSessionName } from "../../src/health/signals";
import {
  backoffMs,
  DEFAULT_THROTTLE_LIMITS,
  MAX_BACKOFF_MS,
  overLimit,
  pendingReplaySeconds,
  resolveLimits,
} from "../../src/health/throttle";
import { describeThrottle, type ThrottleReading } from "../../src/runs/throttle-state";
import { insertUsers, quietLogger } from "../support/database";
import { usersJob } from "../support/jobs";
import { metricSample } from "../support/metric-sample";
import { batch, ROOT, seed, startMeasuredWorker, status } from "../support/processes";
import { runByName, tally, waitFor } from "../support/runs";
import { expectWorkerHandsBackOnSigterm, useWorkersAndDatabase } from "../support/workers";

const RUN_ENV = { CHUNK_SIZE: "500", ROW_CONCURRENCY: "4", HEALTH_CHECK_INTERVAL_S: "0.5", RETRY_DELAY_S: "0" };
/** Generous: the machine is shared and busy. */
const WAIT_MS = 120_000;
/** A test starts processes and waits on several states, each within WAIT_MS. */
const TEST_MS = 4 * WAIT_MS;

describe("throttle limits and backoff", () => {
  const healthy = {
    replicaLagSeconds: 0,
    vacuumedTables: [],
    walMegabytesPerSecond: 0,
    lockWaitSeconds: 0,
    activeSessions: 0,
  };
  const table = '"public"."users"';

  it("names the first limit a reading is over, figure against threshold", () => {
    expect(overLimit(healthy, DEFAULT_THROTTLE_LIMITS, table)).toBeNull();
    expect(overLimit({ ...healthy, replicaLagSeconds: 12.34 }, DEFAULT_THROTTLE_LIMITS, table)).toEqual({
      signal: "replica_lag",
      figure: 12.3,
      threshold: 5,
      unit: "s",
    });
    expect(overLimit({ ...healthy, vacuumedTables: [table] }, DEFAULT_THROTTLE_LIMITS, table)?.signal).toBe("vacuum");
    expect(overLimit({ ...healthy, vacuumedTables: ['"public"."orders"'] }, DEFAULT_THROTTLE_LIMITS, table)).toBeNull();
    // WAL is off by default; 0 turns any limit off
    expect(overLimit({ ...healthy, walMegabytesPerSecond: 500 }, DEFAULT_THROTTLE_LIMITS, table)).toBeNull();
    const limits = resolveLimits({ maxWalMegabytesPerSecond: 20, maxLockWaitSeconds: 0 }, { onVacuum: false });
    expect(overLimit({ ...healthy, walMegabytesPerSecond: 25 }, limits, table)).toMatchObject({
      signal: "wal_rate",
      figure: 25,
      threshold: 20,
      unit: "MB/s",
    });
    expect(overLimit({ ...healthy, lockWaitSeconds: 60, vacuumedTables: [table] }, limits, table)).toBeNull();
    // active sessions: off by default
    expect(overLimit({ ...healthy, activeSessions: 500 }, DEFAULT_THROTTLE_LIMITS, table)).toBeNull();
    const busy = overLimit({ ...healthy, activeSessions: 12 }, resolveLimits({ maxActiveSessions: 8 }, {}), table);
    expect(busy).toEqual({ signal: "active_sessions", figure: 12, threshold: 8, unit: "sessions" });
    expect(describeThrottle(busy as ThrottleReading)).toBe("active sessions 12 over 8");
    expect(overLimit({ ...healthy, activeSessions: 8 }, resolveLimits({ maxActiveSessions: 8 }, {}), table)).toBeNull();
  });

  it("takes the environment's limits over the job's, and the job's over the defaults", () => {
    expect(resolveLimits({ maxReplicaLagSeconds: 30, onVacuum: false }, { maxReplicaLagSeconds: 2 })).toEqual({
      ...DEFAULT_THROTTLE_LIMITS,
      maxReplicaLagSeconds: 2,
      onVacuum: false,
    });
    const config = parseConfig({ THROTTLE_MAX_REPLICA_LAG_S: "2.5", THROTTLE_ON_VACUUM: "off" });
    expect(config.throttle).toMatchObject({ enabled: true, healthCheckIntervalMs: 1000 });
    expect(resolveLimits(undefined, config.throttle.limits)).toMatchObject({
      maxReplicaLagSeconds: 2.5,
      onVacuum: false,
    });
    expect(parseConfig({ THROTTLE: "off" }).throttle.enabled).toBe(false);
    expect(parseConfig({ THROTTLE_MAX_ACTIVE_SESSIONS: "8" }).throttle.limits.maxActiveSessions).toBe(8);
    expect(() => parseConfig({ THROTTLE_MAX_ACTIVE_SESSIONS: "2.5" })).toThrow(
      'THROTTLE_MAX_ACTIVE_SESSIONS must be a whole number from 0 to 100000 (got "2.5")',
    );
    expect(() => parseConfig({ THROTTLE_MAX_LOCK_WAIT_S: "-1" })).toThrow(
      'THROTTLE_MAX_LOCK_WAIT_S must be a number of at least 0 (0: off) (got "-1")',
    );
    expect(() => parseConfig({ THROTTLE: "maybe" })).toThrow('THROTTLE must be on or off (got "maybe")');
    expect(() => parseConfig({ REPLICA_DATABASE_URL: "postgres://u:hunter2@x/" })).not.toThrow();
    expect(() => parseConfig({ REPLICA_DATABASE_URL: "nope hunter2" })).toThrow(/^REPLICA_DATABASE_URL [^"]*$/);
  });

  it("refuses a job whose throttle is not one", () => {
    const job = { name: "bad", table: "users", key: "id", reads: {}, process: async () => undefined };
    expect(() => defineJob({ ...job, throttle: { limits: { maxReplicaLagSeconds: -1 } } })).toThrow(
      "job bad: throttle limit maxReplicaLagSeconds must be a number of at least 0 (0: off)",
    );
    expect(() => defineJob({ ...job, throttle: { when: { sql: 1 } as never } })).toThrow(
      'job bad: throttle.when must be { sql: "SELECT ..." } or an async function',
    );
  });

  it("backs off from the check interval, doubling to a bound, with jitter", () => {
    expect(backoffMs(1, 1000, 0)).toBe(500);
    expect(backoffMs(1, 1000, 0.999)).toBe(1000);
    expect(backoffMs(3, 1000, 0.999)).toBe(3998);
    expect(backoffMs(50, 1000, 0.999)).toBeLessThanOrEqual(MAX_BACKOFF_MS);
    expect(backoffMs(50, 1000, 0)).toBe(MAX_BACKOFF_MS / 2);
  });

  it("tells a standby's lag from the WAL it has yet to replay, not from the time of its last replay", () => {
    const marks = [
      { at: 10_000, walBytes: 100 },
      { at: 11_000, walBytes: 200 },
      { at: 12_000, walBytes: 300 },
    ];
    expect(pendingReplaySeconds(marks, 300, 12_000)).toBe(0);
    expect(pendingReplaySeconds(marks, 250, 12_000)).toBe(0);
    expect(pendingReplaySeconds(marks, 150, 12_000)).toBe(1);
    expect(pendingReplaySeconds(marks, 50, 12_000)).toBe(2);
  });
});

describe("throttling a run on the database's health", () => {
  const { db, workers } = useWorkersAndDatabase("SIGTERM");
  let jobsDir: string;

  beforeEach(async () => {
    jobsDir = await fs.mkdtemp(path.join(os.tmpdir(), "throttle-jobs-"));
  });
  afterEach(() => fs.rm(jobsDir, { recursive: true, force: true }));

  const measuredWorker = (env: Record<string, string>) =>
    startMeasuredWorker({ DATABASE_URL: db.url, ...RUN_ENV, ...env }, workers, WAIT_MS);

  /**
   * Waits until a worker's chunks of `job` wait on `reason` and have waited for two seconds, and
   * checks that they claimed nothing meanwhile (`claimed`: the rows not pending) and that the run
   * records the throttle.
   */
  async function expectHeldBack(
    metrics: () => Promise<string>,
    job: string,
    reason: string,
    claimed: () => Promise<number>,
    run: string,
  ) {
    const labels = `job="${job}",reason="${reason}"`;
    const throttled = async () => metricSample(await metrics(), "batch_throttled_chunks", labels) >= 1;
    const waited = async () => metricSample(await metrics(), "batch_throttled_seconds_total", labels) >= 2;
    await waitFor(`${job} throttled on ${reason}`, throttled, WAIT_MS);
    expect(await claimed()).toBe(0);
    await waitFor(`${job} throttled for 2 s`, waited, WAIT_MS);
    expect(await claimed()).toBe(0);
    expect(metricSample(await metrics(), "batch_throttled_chunks", labels)).toBeGreaterThanOrEqual(1);
    const { rows } = await db.pool.query(
      "SELECT t.signal FROM batch_throttled_runs t JOIN batch_jobs j ON j.id = t.run_id WHERE j.batch_name = $1",
      [run],
    );
    expect(rows).toEqual([{ signal: reason }]);
  }

  /**
   * Checks the run's history: throttled, then resumed, and resumed in the end (an autovacuum of
   * the table during the run may throttle it again).
   */
  const expectThrottleHistory = async (run: string) => {
    const events = (
      await db.pool.query(
        `SELECT e.event FROM batch_events e JOIN batch_jobs j ON j.id = e.run_id
          WHERE j.batch_name = $1 AND e.event IN ('throttled', 'resumed') ORDER BY e.id`,
        [run],
      )
    ).rows.map((row) => row.event);
    expect(events.slice(0, 2)).toEqual(["throttled", "resumed"]);
    expect(events[events.length - 1]).toBe("resumed");
  };

  const usersClaimed = async () =>
    (await db.pool.query("SELECT count(*)::int AS n FROM users WHERE batch_status <> 'pending'")).rows[0].n;

  /** Waits for the users run to complete, and checks its books against the rows. */
  async function expectCompletedUsersRun(name: string, rows: number) {
    await waitFor(
      `run ${name} to complete`,
      async () => (await runByName(db.pool, name)).status === "completed",
      WAIT_MS,
    );
    const books = await tally(db.pool, name, 3);
    expect(books.pending).toBe(0);
    expect(books.completed + books.failed).toBe(rows);
    expect(books.run.processed_records).toBe(books.completed);
    expect(books.run.failed_records).toBe(books.failed);
  }

  it(
    "holds claiming while an application session waits on a worker's lock, and goes on once it is released",
    async () => {
      await insertUsers(db.pool, 2000);
      await db.pool.query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
      await db.pool.query("INSERT INTO accounts VALUES (1, 0)");
      // a worker's session (of another pod) holds a row; the application waits for it
      const holder = new pg.Client({ connectionString: db.url, application_name: workerSessionName("elsewhere") });
      const application = new pg.Client({ connectionString: db.url, application_name: "the application" });
      await holder.connect();
      await application.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("UPDATE accounts SET balance = balance + 1 WHERE id = 1");
        await application.query("BEGIN");
        const blocked = application.query("UPDATE accounts SET balance = balance + 1 WHERE id = 1");
        await waitFor("the application to wait over a second", async () => {
          const { rows } = await db.pool.query(
            "SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND waitstart < clock_timestamp() - interval '1.2 s'",
          );
          return rows[0].n > 0;
        });
        expect((await seed(["enqueue", "--batch-name", "beside-app"], { DATABASE_URL: db.url, ...RUN_ENV })).code).toBe(
          0,
        );
        const metrics = await measuredWorker({});
        await expectHeldBack(metrics, "users", "lock_wait", usersClaimed, "beside-app");

        await holder.query("ROLLBACK");
        await blocked;
        await application.query("COMMIT");
        await expectCompletedUsersRun("beside-app", 2000);
        const text = await metrics();
        expect(metricSample(text, "batch_throttled_chunks", 'job="users",reason="lock_wait"')).toBe(0);
        expect((await db.pool.query("SELECT balance FROM accounts")).rows[0].balance).toBe(1);
        await expectThrottleHistory("beside-app");
      } finally {
        await holder.end();
        await application.end();
      }
    },
    TEST_MS,
  );

  it(
    "holds claiming while more of others' sessions are active than the limit, and goes on once they end",
    async () => {
      await insertUsers(db.pool, 2000);
      // the application's sessions, each running a statement until the test cancels it; the
      // limit counts the whole server's, so others on a shared server may add to them
      const held = 10;
      const limit = 6;
      const application = Array.from(
        { length: held },
        () => new pg.Client({ connectionString: db.url, application_name: "busy application" }),
      );
      await Promise.all(application.map((client) => client.connect()));
      try {
        const sleeping = application.map((client) =>
          client.query("SELECT pg_sleep(3600)").catch((error: Error) => error),
        );
        await waitFor(`${held} application sessions to be active`, async () => {
          const { rows } = await db.pool.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'busy application' AND state = 'active'",
          );
          return rows[0].n === held;
        });
        const enqueued = await seed(["enqueue", "--batch-name", "beside-busy"], { DATABASE_URL: db.url, ...RUN_ENV });
        expect(enqueued.code).toBe(0);
        const metrics = await measuredWorker({ THROTTLE_MAX_ACTIVE_SESSIONS: String(limit) });
        await expectHeldBack(metrics, "users", "active_sessions", usersClaimed, "beside-busy");
        const { rows } = await db.pool.query("SELECT figure, threshold, unit FROM batch_throttles");
        expect(rows[0]).toMatchObject({ threshold: limit, unit: "sessions" });
        expect(rows[0].figure).toBeGreaterThanOrEqual(held);

        await db.pool.query(
          "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'busy application'",
        );
        for (const ended of await Promise.all(sleeping)) expect(String(ended)).toMatch(/canceling statement/);
        await expectCompletedUsersRun("beside-busy", 2000);
        expect(metricSample(await metrics(), "batch_throttled_chunks", 'job="users",reason="active_sessions"')).toBe(0);
        await expectThrottleHistory("beside-busy");
      } finally {
        await Promise.all(application.map((client) => client.end()));
      }
    },
    TEST_MS,
  );

  it(
    "holds claiming while the server writes more WAL a second than the limit, and goes on once it writes less",
    async () => {
      const rows = 20_000;
      await insertUsers(db.pool, rows);
      // a session writing WAL as fast as it can, tens of megabytes a second on any machine, in a
      // table of its own emptied each round so that the disk does not fill
      await db.pool.query("CREATE TABLE wal_filler (id INTEGER, pad TEXT)");
      const filler = new pg.Client({ connectionString: db.url, application_name: "wal filler" });
      await filler.connect();
      let filling = true;
      const writing = (async () => {
        while (filling) {
          await filler.query("INSERT INTO wal_filler SELECT i, repeat('x', 400) FROM generate_series(1, 20000) AS i");
          await filler.query("TRUNCATE wal_filler");
        }
      })();
      try {
        const enqueued = await seed(["enqueue", "--batch-name", "beside-wal"], { DATABASE_URL: db.url, ...RUN_ENV });
        expect(enqueued.code).toBe(0);
        // records that wait a little: the run outlasts the readings that find the filler's WAL
        const metrics = await measuredWorker({ THROTTLE_MAX_WAL_MB_S: "5", PROCESS_DELAY_MS: "5" });
        // the first reading has no reading before it to tell a rate from: its slices may claim
        const labels = 'job="users",reason="wal_rate"';
        await waitFor(
          "users throttled on wal_rate for 2 s",
          async () => metricSample(await metrics(), "batch_throttled_seconds_total", labels) >= 2,
          WAIT_MS,
        );
        // a reading between two of the filler's statements may find less: each is looked for until seen
        const held = await waitFor(
          "the run's throttle recorded on wal_rate",
          async () =>
            (
              await db.pool.query(
                `SELECT t.signal, t.threshold, t.unit, t.figure FROM batch_throttled_runs t
                   JOIN batch_jobs j ON j.id = t.run_id WHERE j.batch_name = 'beside-wal' AND t.signal = 'wal_rate'`,
              )
            ).rows[0],
          WAIT_MS,
        );
        expect(held).toMatchObject({ threshold: 5, unit: "MB/s" });
        expect(held.figure).toBeGreaterThan(5);
        const shown = await waitFor(
          "status to say the run is throttled on wal_rate",
          async () => {
            const report = JSON.parse((await status(["--json", "beside-wal"], { DATABASE_URL: db.url })).stdout);
            return report.throttle?.signal === "wal_rate" ? report : undefined;
          },
          WAIT_MS,
        );
        expect(shown).toMatchObject({ status: "running", throttled: true });
        expect(shown.throttle).toMatchObject({ threshold: 5, unit: "MB/s" });

        filling = false;
        await writing;
        await expectCompletedUsersRun("beside-wal", rows);
        expect(metricSample(await metrics(), "batch_throttled_chunks", labels)).toBe(0);
        await expectThrottleHistory("beside-wal");
      } finally {
        filling = false;
        await writing.catch(() => undefined);
        await filler.end();
      }
    },
    TEST_MS,
  );

  it(
    "holds claiming while a VACUUM of the job's table runs, and goes on once it ends",
    async () => {
      await insertUsers(db.pool, 5000);
      const metrics = await measuredWorker({});
      // a vacuum of every page that sleeps 0.4 s after each (a page read costs 10000, the limit is
      // 1, a sleep is at most 4 times the delay): minutes, until the test cancels it
      const vacuum = new pg.Client({ connectionString: db.url, application_name: "slow vacuum" });
      await vacuum.connect();
      try {
        await vacuum.query("SET vacuum_cost_delay = 100; SET vacuum_cost_limit = 1; SET vacuum_cost_page_hit = 10000");
        await vacuum.query("SET vacuum_cost_page_miss = 10000");
        const vacuuming = vacuum.query("VACUUM (DISABLE_PAGE_SKIPPING) users").catch((error: Error) => error);
        await waitFor("the vacuum to start", async () => {
          const { rows } = await db.pool.query(
            "SELECT count(*)::int AS n FROM pg_stat_progress_vacuum WHERE relid = 'users'::regclass",
          );
          return rows[0].n > 0;
        });
        const enqueued = await seed(["enqueue", "--batch-name", "beside-vacuum"], { DATABASE_URL: db.url, ...RUN_ENV });
        expect(enqueued.code).toBe(0);
        await expectHeldBack(metrics, "users", "vacuum", usersClaimed, "beside-vacuum");
        // still vacuuming: what held the run back was the vacuum
        expect(await Promise.race([vacuuming, Promise.resolve("running")])).toBe("running");

        await db.pool.query(
          "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'slow vacuum'",
        );
        expect(String(await vacuuming)).toMatch(/canceling statement/);
        await expectCompletedUsersRun("beside-vacuum", 5000);
      } finally {
        await vacuum.end();
      }
    },
    TEST_MS,
  );

  /** Writes a job of a table of its own (`name`_items) whose throttle condition is `when` (source). */
  async function writeGatedJob(name: string, when: string, rows: number) {
    const source = `"use strict";
const fs = require("node:fs");
const { column, defineJob } = require(${JSON.stringify(path.join(ROOT, "dist/src/index.js"))});
module.exports = defineJob({
  name: ${JSON.stringify(name)},
  table: ${JSON.stringify(`${name}_items`)},
  key: "id",
  reads: { n: column.integer() },
  writes: { doubled: column.integer() },
  state: "gate",
  throttle: { when: ${when} },
  async process(record) {
    return { doubled: record.n * 2 };
  },
});
`;
    await fs.writeFile(path.join(jobsDir, `${name}.js`), source);
    await db.pool.query(
      `CREATE TABLE ${name}_items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, doubled INTEGER,
         gate_status VARCHAR(20) NOT NULL DEFAULT 'pending', gate_attempts INTEGER NOT NULL DEFAULT 0,
         gate_error TEXT, gate_run_id INTEGER, gate_processed_at TIMESTAMPTZ);
       INSERT INTO ${name}_items (id, n) SELECT i, i FROM generate_series(1, ${rows}) AS i`,
    );
  }

  /** Runs the gated job while its condition holds, then lets it go; checks every row was done once. */
  async function expectGatedRun(name: string, release: () => Promise<void>) {
    const env = { DATABASE_URL: db.url, ...RUN_ENV, JOBS_DIR: jobsDir };
    const metrics = await measuredWorker({ JOBS_DIR: jobsDir });
    const enqueued = await seed(["enqueue", "--job", name, "--batch-name", name], env);
    expect({ code: enqueued.code, stderr: enqueued.code === 0 ? "" : enqueued.stderr }).toEqual({
      code: 0,
      stderr: "",
    });
    const claimed = async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM ${name}_items WHERE gate_status <> 'pending'`)).rows[0].n;
    await expectHeldBack(metrics, name, "condition", claimed, name);
    await release();
    await waitFor(
      `run ${name} to complete`,
      async () => (await runByName(db.pool, name)).status === "completed",
      WAIT_MS,
    );
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE gate_status = 'completed' AND doubled = 2 * n AND gate_attempts = 1)::int AS done,
              count(*)::int AS total FROM ${name}_items`,
    );
    expect(rows[0].done).toBe(rows[0].total);
    expect((await runByName(db.pool, name)).processed_records).toBe(rows[0].total);
    await expectThrottleHistory(name);
  }

  it(
    "holds a job back while its SQL condition returns a reason",
    async () => {
      await writeGatedJob("gated_sql", `{ sql: "SELECT reason FROM maintenance_windows LIMIT 1" }`, 1500);
      await db.pool.query("CREATE TABLE maintenance_windows (reason TEXT NOT NULL)");
      await db.pool.query("INSERT INTO maintenance_windows VALUES ('the nightly report is running')");
      await expectGatedRun("gated_sql", async () => {
        await db.pool.query("DELETE FROM maintenance_windows");
      });
    },
    TEST_MS,
  );

  it(
    "holds a job back while its function returns a reason",
    async () => {
      const flag = path.join(jobsDir, "hold");
      await fs.writeFile(flag, "");
      const when = `async (ctx) => (fs.existsSync(${JSON.stringify(flag)}) && ctx.job === "gated_fn" ? "held by a flag file" : null)`;
      await writeGatedJob("gated_fn", when, 1500);
      await expectGatedRun("gated_fn", () => fs.rm(flag));
    },
    TEST_MS,
  );

  it(
    "lets a throttled worker shut down, handing its chunks back, and a throttled run be cancelled",
    async () => {
      await writeGatedJob("gated_held", `{ sql: "SELECT reason FROM maintenance_windows LIMIT 1" }`, 1000);
      await db.pool.query("CREATE TABLE maintenance_windows (reason TEXT NOT NULL)");
      await db.pool.query("INSERT INTO maintenance_windows VALUES ('held for good')");
      const claimed = async () =>
        (await db.pool.query("SELECT count(*)::int AS n FROM gated_held_items WHERE gate_status <> 'pending'")).rows[0]
          .n;
      // a grace longer than the test waits: the worker exits in time only if the wait ends on SIGTERM
      const env = { JOBS_DIR: jobsDir, SHUTDOWN_GRACE_S: "600" };
      let metrics = await measuredWorker(env);
      const enqueued = await seed(["enqueue", "--job", "gated_held", "--batch-name", "held"], {
        DATABASE_URL: db.url,
        ...RUN_ENV,
        JOBS_DIR: jobsDir,
      });
      expect(enqueued.code).toBe(0);
      await expectHeldBack(metrics, "gated_held", "condition", claimed, "held");

      await expectWorkerHandsBackOnSigterm(workers, db.pool, WAIT_MS);

      // another worker takes the chunks back, and waits as the first did, until the run is cancelled
      metrics = await measuredWorker(env);
      await expectHeldBack(metrics, "gated_held", "condition", claimed, "held");
      expect((await batch(["cancel", "held"], { DATABASE_URL: db.url })).code).toBe(0);
      await waitFor(
        "the run to be cancelled",
        async () => (await runByName(db.pool, "held")).status === "cancelled",
        WAIT_MS,
      );
      expect(await claimed()).toBe(0);
    },
    TEST_MS,
  );

  it("leaves out a standby of REPLICA_DATABASE_URL that cannot be reached, and reads the rest", async () => {
    const closed = await freePort();
    const replicaUrl = `postgres://nobody@127.0.0.1:${closed}/postgres`;
    const watch = new HealthWatch({ intervalMs: 200, envLimits: {}, replicaUrl, logger: quietLogger });
    const job = { ...usersJob, throttle: { when: { sql: "SELECT 'held'" } } };
    expect(await watch.check(job, withPool(db.pool))).toMatchObject({ signal: "condition", detail: "held" });
    await watch.close();
  });

  it("holds a job back whose condition fails, with the error as the reason", async () => {
    const watch = new HealthWatch({ intervalMs: 200, envLimits: {}, replicaUrl: undefined, logger: quietLogger });
    const read = withPool(db.pool);
    const failing = async () => {
      throw new Error("the report service is down");
    };
    const conditions = [
      [{ sql: "SELECT reason FROM no_such_table" }, 'relation "no_such_table" does not exist'],
      [failing, "the report service is down"],
      [{ sql: "SELECT NULL" }, null],
    ] as const;
    for (const [when, reason] of conditions) {
      const job = { ...usersJob, name: `cond${conditions.findIndex(([w]) => w === when)}`, throttle: { when } };
      const reading = await watch.check(job, read);
      if (reason === null) expect(reading).toBeNull();
      else
        expect(reading).toEqual({
          signal: "condition",
          figure: 1,
          threshold: 0,
          unit: "",
          detail: `the job's throttle condition failed: ${reason}`,
        });
    }
    await watch.close();
  });

  it(
    "reads the WAL the server writes per second, and tells a job over its limit",
    async () => {
      const watch = new HealthWatch({ intervalMs: 200, envLimits: {}, replicaUrl: undefined, logger: quietLogger });
      const job = { ...usersJob, throttle: { limits: { maxWalMegabytesPerSecond: 1 } } };
      const read = withPool(db.pool);
      expect(await watch.check(job, read)).toBeNull();
      await db.pool.query("CREATE TABLE filler (id INTEGER, pad TEXT)");
      // about 60 MB of WAL in one statement, well over a megabyte a second on any machine
      await db.pool.query("INSERT INTO filler SELECT i, repeat('x', 400) FROM generate_series(1, 120000) AS i");
      // the first reading after it (the one before is at least the interval old) spans the insert
      const reading = await waitFor("a reading after the insert", () => watch.check(job, read), WAIT_MS);
      expect(reading).toMatchObject({ signal: "wal_rate", threshold: 1, unit: "MB/s" });
      expect(reading?.figure).toBeGreaterThan(1);
      await watch.close();
    },
    TEST_MS,
  );
});
