import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { freePort } from "../../src/base/free-port";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../../src/db/embedded";
import { migrate } from "../../src/db/migrate";
import { createPool } from "../../src/db/pool";
import { EXIT_POOL_LOST } from "../../src/worker/pool-watchdog";
import { insertUsers, quietLogger } from "./database";
import { seed } from "./processes";
import { runByName, tally } from "./runs";
import { type SupervisedWorker, superviseWorker } from "./supervisor";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy";

/**
 * A long-running worker, under a supervisor that restarts it when it exits non-zero, through
 * every way its database goes away and comes back (test/system/database-restart.test.ts and
 * database-outage.test.ts, which run side by side). The database is a server of the describe's
 * own, stopped and started for real; the worker reaches it through a proxy standing for its
 * address. Each scenario runs a fresh batch run, interrupts it in the middle, and checks that the
 * run resumes and completes with every row written once and the queue left clean.
 */

/** Rows of each run: 500 done before the outage, the rest after it. */
const ROWS = 2000;
/** How long after the database is back the run must be moving again. */
const RESUME_LIMIT_MS = 60_000;

export interface RestartingDatabase {
  server(): EmbeddedDatabase;
  proxy(): TcpProxy;
  /** A run over ROWS new rows, interrupted by `outage` once 500 are done; resolves when it completes. */
  rideOut(name: string, outage: () => Promise<void>): Promise<void>;
}

/** A server, its proxy and a supervised worker for the describe it is called in. */
export function useRestartingDatabase(): RestartingDatabase {
  let server: EmbeddedDatabase;
  let proxy: TcpProxy;
  let pool: pg.Pool;
  let worker: SupervisedWorker;
  let metricsPort: number;
  let nextId = 1;

  beforeAll(async () => {
    server = await startEmbeddedPostgres(quietLogger);
    const direct = new URL(server.url);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
    const viaProxy = new URL(server.url);
    viaProxy.port = String(proxy.port);
    pool = createPool({ url: server.url, max: 4, appName: "restart-test", logger: quietLogger });
    await migrate(pool, quietLogger);
    metricsPort = await freePort();
    worker = superviseWorker({
      DATABASE_URL: viaProxy.toString(),
      CHUNK_SIZE: "500",
      WORKERS: "2",
      ROW_CONCURRENCY: "4",
      PROCESS_DELAY_MS: "20",
      WORKER_DEAD_AFTER_S: "5",
      METRICS_PORT: String(metricsPort),
    });
  });
  afterAll(async () => {
    await worker?.stop();
    await pool?.end();
    await proxy?.close();
    await server?.stop();
  });

  /** What the worker said, for a failure message. */
  const failWithLog = (what: string) => new Error(`${what}\n${worker.log().slice(-6000)}`);

  async function probe<T>(what: string, limitMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
    const deadline = Date.now() + limitMs;
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value) return value;
      if (Date.now() > deadline) throw failWithLog(`${what}: not within ${limitMs / 1000} s`);
      await sleep(100);
    }
  }

  async function healthz(): Promise<number | undefined> {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/healthz`).catch(() => undefined);
    return response?.status;
  }

  async function rideOut(name: string, outage: () => Promise<void>): Promise<void> {
    await insertUsers(pool, ROWS, nextId);
    nextId += ROWS;
    const exitsBefore = worker.exits.length;
    expect((await seed(["enqueue", "--batch-name", name], { DATABASE_URL: server.url, CHUNK_SIZE: "500" })).code).toBe(
      0,
    );
    await probe("the first rows", 60_000, async () => (await runByName(pool, name)).processed_records >= 500);

    const cut = Date.now();
    await outage();
    const back = Date.now();
    const doneWhenBack = (await runByName(pool, name)).processed_records;
    expect(doneWhenBack).toBeLessThan(ROWS);
    await probe("the run moving again after the database came back", RESUME_LIMIT_MS, async () => {
      const run = await runByName(pool, name);
      return run.processed_records > doneWhenBack || run.status === "completed";
    });
    const resumed = Date.now();
    await probe(
      "the run to complete",
      RESUME_LIMIT_MS,
      async () => (await runByName(pool, name)).status === "completed",
    );
    const exits = worker.exits.slice(exitsBefore).map((exit) => exit.code ?? exit.signal);
    process.stderr.write(
      `${name}: database away for ${((back - cut) / 1000).toFixed(1)} s; run moving again ${((resumed - back) / 1000).toFixed(1)} s ` +
        `after it was back, completed ${((Date.now() - back) / 1000).toFixed(1)} s after; worker exits: ${exits.length ? exits.join(", ") : "none"}\n`,
    );

    // a worker that gave up its pool said so with its own exit status, and nothing else happened to it
    for (const code of exits) expect(code).toBe(EXIT_POOL_LOST);
    const counts = await tally(pool, name, 3);
    expect(counts.run).toMatchObject({ status: "completed", processed_records: ROWS, failed_records: 0 });
    expect(counts.completed).toBe(ROWS);
    const { rows: attempts } = await pool.query("SELECT DISTINCT attempts FROM users WHERE batch_id = $1", [
      counts.run.id,
    ]);
    expect(attempts).toEqual([{ attempts: 1 }]);
    // the queue empties: no job left behind, none locked by a pool that died
    await probe("the queue to empty", RESUME_LIMIT_MS, async () => {
      const { rows } = await pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
      return rows[0].n === 0;
    });
    // and a worker is running, healthy, ready for the next run
    await probe("a healthy worker", 30_000, async () => (await healthz()) === 200);
  }

  return { server: () => server, proxy: () => proxy, rideOut };
}
