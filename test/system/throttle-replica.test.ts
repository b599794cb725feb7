import pg from "pg";
import { freePort } from "../../src/base/free-port";
import { migrate } from "../../src/db/migrate";
import { createPool } from "../../src/db/pool";
import { insertUsers, quietLogger } from "../support/database";
import { metricSample } from "../support/metric-sample";
import { type Running, seed, startWorker, status, stopAll } from "../support/processes";
import { runByName, tally, waitFor } from "../support/runs";
import { type PrimaryAndStandby, standbyUnavailableReason, startPrimaryAndStandby } from "../support/standby";

/**
 * Workers on a primary with a streaming standby: while the standby's replay is paused, they
 * stop claiming (status, the metrics and the run's history say so), and once it resumes the run
 * goes on and ends with exact books. The lag is seen two ways: on the primary's
 * pg_stat_replication, and on the standby itself through REPLICA_DATABASE_URL, by a worker login
 * that cannot read the primary's view of it.
 */

const ROWS = 4000;
/** Slow enough that the run is still going when replay pauses, on any machine. */
const RUN_ENV = {
  CHUNK_SIZE: "250",
  WORKERS: "2",
  ROW_CONCURRENCY: "4",
  PROCESS_DELAY_MS: "25",
  HEALTH_CHECK_INTERVAL_S: "0.5",
};
/** Generous: the machine is shared and busy. */
const WAIT_MS = 120_000;
/**
 * The jest timeout of a scenario: beyond its waits' sum on a loaded machine, so that none is cut
 * off with its replay still paused for the next one.
 */
const SCENARIO_MS = 300_000;

const LAG = 'job="users",reason="replica_lag"';

interface PrimaryDatabase {
  url: string;
  pool: pg.Pool;
}

describe("workers beside a streaming standby", () => {
  let servers: PrimaryAndStandby;
  /** The primary's postgres database: creates the scenarios' databases and roles. */
  let admin: pg.Client;
  const workers: Running[] = [];

  beforeAll(async () => {
    const reason = standbyUnavailableReason();
    if (reason) throw new Error(reason);
    servers = await startPrimaryAndStandby();
    admin = new pg.Client({ connectionString: servers.primaryUrl });
    await admin.connect();
  }, 180_000);

  afterEach(async () => {
    await stopAll(workers, "SIGTERM");
  });

  afterAll(async () => {
    await admin?.end();
    await servers?.stop();
  });

  /** `url` (of the primary or the standby) for database `name`, as `login` when given. */
  function urlOf(url: string, name: string, login?: { user: string; password: string }): string {
    const target = new URL(url);
    target.pathname = `/${name}`;
    if (login) {
      target.username = login.user;
      target.password = login.password;
    }
    return target.toString();
  }

  /**
   * Runs ROWS users on `db` with a worker of `workerEnv` (its DATABASE_URL included): pauses replay once the run is going, expects the workers to hold back on replica
   * lag, resumes replay, and expects the run to complete with every row written once.
   */
  async function throttleOnPausedReplay(name: string, db: PrimaryDatabase, workerEnv: Record<string, string>) {
    const { pool } = db;
    const env = { DATABASE_URL: db.url };
    await insertUsers(pool, ROWS);
    expect((await seed(["enqueue", "--batch-name", name], { ...env, ...RUN_ENV })).code).toBe(0);
    const port = await freePort();
    const worker = startWorker([], { ...workerEnv, ...RUN_ENV, METRICS_PORT: String(port) });
    workers.push(worker);
    const metrics = async () => {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
      return response ? await response.text() : ""; // not serving yet
    };
    const done = async () =>
      (await pool.query("SELECT count(*)::int AS n FROM users WHERE batch_status <> 'pending'")).rows[0].n as number;
    const failWithLog = (error: Error) => {
      throw new Error(`${error.message}\n${worker.output.stderr.slice(-4000)}`);
    };

    await waitFor("the run to be going", async () => (await done()) >= 250, WAIT_MS).catch(failWithLog);
    await servers.pauseReplay();
    try {
      // every worker slot waits: no slice is in flight, and none claims while replay stays paused
      await waitFor(
        "both chunks to hold back on replica lag",
        async () => metricSample(await metrics(), "batch_throttled_chunks", LAG) === 2,
        WAIT_MS,
      ).catch(failWithLog);
      const heldAt = await done();
      const waitedBefore = metricSample(await metrics(), "batch_throttled_seconds_total", LAG);
      await waitFor(
        "the chunks to wait 4 s more",
        async () => metricSample(await metrics(), "batch_throttled_seconds_total", LAG) >= waitedBefore + 4,
        WAIT_MS,
      );
      expect(await done()).toBe(heldAt);
      expect(heldAt).toBeLessThan(ROWS);
      expect(await servers.replayLagSeconds()).toBeGreaterThan(0);

      const report = JSON.parse((await status([name, "--json"], env)).stdout);
      expect(report).toMatchObject({ status: "running", throttled: true, throttle: { signal: "replica_lag" } });
      // the figure is shown to a tenth: a lag just over the limit shows as the limit
      expect(report.throttle.figure).toBeGreaterThanOrEqual(report.throttle.threshold);
      expect((await status([name], env)).stdout).toMatch(/throttled: replica lag [\d.]+ s over 5 s since/);
    } finally {
      await servers.resumeReplay();
    }

    await servers.waitForReplay();
    await waitFor(
      `run ${name} to complete`,
      async () => (await runByName(pool, name)).status === "completed",
      WAIT_MS,
    ).catch(failWithLog);
    expect(metricSample(await metrics(), "batch_throttled_chunks", LAG)).toBe(0);
    const books = await tally(pool, name, 3);
    expect(books).toMatchObject({ completed: ROWS, failed: 0, retryable: 0, pending: 0 });
    expect(books.run).toMatchObject({ total_records: ROWS, processed_records: ROWS, failed_records: 0 });
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM users WHERE attempts <> 1");
    expect(rows[0].n).toBe(0);
    const events = (
      await pool.query(
        `SELECT e.event, e.detail FROM batch_events e JOIN batch_jobs j ON j.id = e.run_id
          WHERE j.batch_name = $1 AND e.event IN ('throttled', 'resumed') ORDER BY e.id`,
        [name],
      )
    ).rows as { event: string; detail: string }[];
    const lagged = events.findIndex((e) => e.event === "throttled" && e.detail.startsWith("replica lag"));
    expect(lagged).toBeGreaterThanOrEqual(0);
    expect(events[lagged + 1]?.event).toBe("resumed");
    expect(events[events.length - 1]?.event).toBe("resumed");
  }

  /** A new database on the primary with the schema, and a pool on it as the superuser. */
  async function migratedDatabase(name: string): Promise<PrimaryDatabase> {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = urlOf(servers.primaryUrl, name);
    const pool = createPool({ url, max: 4, appName: "tests", logger: quietLogger });
    await migrate(pool, quietLogger);
    return { url, pool };
  }

  it(
    "holds back while the primary's pg_stat_replication shows the standby's replay behind",
    async () => {
      const db = await migratedDatabase("lag_on_primary");
      try {
        await throttleOnPausedReplay("lag-on-primary", db, { DATABASE_URL: db.url });
      } finally {
        await db.pool.end();
      }
    },
    SCENARIO_MS,
  );

  it(
    "holds back while the standby of REPLICA_DATABASE_URL lags, where the primary does not show it",
    async () => {
      const db = await migratedDatabase("lag_on_replica");
      const login = { user: "replica_test_worker", password: "replica-test-password" };
      try {
        expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
        await admin.query(`CREATE ROLE ${login.user} LOGIN PASSWORD '${login.password}' IN ROLE batch_worker`);
        // this server is the test's own: its workers may not read the standbys' positions on it
        await admin.query("REVOKE pg_read_all_stats FROM batch_worker");
        const workerUrl = urlOf(servers.primaryUrl, "lag_on_replica", login);
        const blind = new pg.Client({ connectionString: workerUrl });
        await blind.connect();
        try {
          const { rows } = await blind.query("SELECT replay_lsn FROM pg_stat_replication");
          expect(rows).toEqual([{ replay_lsn: null }]);
        } finally {
          await blind.end();
        }
        await throttleOnPausedReplay("lag-on-replica", db, {
          DATABASE_URL: workerUrl,
          REPLICA_DATABASE_URL: urlOf(servers.standbyUrl, "lag_on_replica", login),
        });
      } finally {
        await db.pool.end();
      }
    },
    SCENARIO_MS,
  );
});
