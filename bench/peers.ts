import path from "node:path";
import { type Bench, DIST, mustSucceed, round } from "./harness";
import { enqueueGraphileWorkerJobs, SCHEMA as GW_SCHEMA } from "./peers/graphile-worker";
import { SCHEMA as BOSS_SCHEMA, enqueuePgBossJobs } from "./peers/pg-boss";
import { rowsDone } from "./peers/users-record";

/**
 * Our worker against job queues used one job per row, on the same rows (a fresh table of
 * synthetic users each time), each record doing the same work: `delayMs` of simulated I/O, then
 * jobs/users.ts's function, then its outcome written (one UPDATE per row for the peers, one per
 * slice for us). Each is timed from its worker process's spawn to its exit; the peers' enqueue
 * is timed apart (ours, the run's planning, is not in our figure either).
 */

export interface PeerOptions {
  rows: number;
  delayMs: number;
  /** Jobs at once for graphile-worker, records in flight for pg-boss: WORKERS × ROW_CONCURRENCY. */
  concurrency: number;
  /** pg-boss: work() loops, and jobs fetched per loop. */
  pgBossWorkers: number;
  pgBossBatchSize: number;
}

export interface PeerFigure {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  enqueueSeconds?: number;
  /** ours / this peer */
  oursRatio?: number;
}

export async function peers(bench: Bench, options: PeerOptions) {
  const { rows, delayMs } = options;

  await bench.freshUsers(rows);
  const ranOurs = await bench.process("peers-ours", { PROCESS_DELAY_MS: String(delayMs) });
  const ours: PeerFigure = { rows, seconds: round(ranOurs.seconds, 2), rowsPerSecond: round(rows / ranOurs.seconds) };

  const peer = async (schema: string, enqueue: () => Promise<number>, script: string, args: number[]) => {
    await bench.freshUsers(rows);
    await bench.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    const enqueueStart = performance.now();
    const added = await enqueue();
    const enqueueSeconds = (performance.now() - enqueueStart) / 1000;
    if (added !== rows) throw new Error(`${script}: ${added} jobs added for ${rows} rows`);
    await bench.pool.query("CHECKPOINT");
    const ran = mustSucceed(
      script,
      await bench.node([path.join(DIST, "bench/peers", script), bench.url, ...args.map(String)]),
    );
    const done = await rowsDone(bench.pool);
    if (done !== rows) throw new Error(`${script}: ${done} of ${rows} rows done`);
    const rowsPerSecond = rows / ran.seconds;
    const figure: PeerFigure = {
      rows,
      seconds: round(ran.seconds, 2),
      rowsPerSecond: round(rowsPerSecond),
      enqueueSeconds: round(enqueueSeconds, 2),
      oursRatio: round(ours.rowsPerSecond / rowsPerSecond, 2),
    };
    await bench.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    return figure;
  };

  const graphileWorker = await peer(
    GW_SCHEMA,
    () => enqueueGraphileWorkerJobs(bench.url, bench.pool),
    "graphile-worker.js",
    [rows, delayMs, options.concurrency],
  );
  const pgBoss = await peer(BOSS_SCHEMA, () => enqueuePgBossJobs(bench.url, bench.pool), "pg-boss.js", [
    rows,
    delayMs,
    options.pgBossWorkers,
    options.pgBossBatchSize,
  ]);
  return {
    delayMs,
    concurrency: options.concurrency,
    pgBoss: { ...pgBoss, workers: options.pgBossWorkers, batchSize: options.pgBossBatchSize },
    graphileWorker,
    ours,
  };
}
