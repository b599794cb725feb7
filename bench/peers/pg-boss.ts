import type pg from "pg";
import PgBoss from "pg-boss";
import { mapConcurrent, PAYLOAD_SQL, type UserPayload, workOnUser } from "./users-record";

/**
 * Peer: pg-boss (10.x, the last line for Node 20) with one job per row. Jobs are inserted in
 * bulk, BATCH rows per `insert` (the row in the payload), in a schema of their own (SCHEMA).
 * The process works them with WORKERS `work()` loops (the bench passes WORKERS, 4), each fetching
 * `batchSize` jobs at a time and running ROW_CONCURRENCY (32) of them at once: the same 128
 * records in flight as our worker. pg-boss completes a fetched batch in one statement once its
 * handler returns, and a loop whose batch took less than its polling interval (0.5 s, pg-boss's
 * minimum) waits out the rest: the batch is sized so that a batch takes about that long.
 * Each job waits `delayMs`, runs jobs/users.ts and writes its row (bench/peers/users-record.ts).
 *
 * Run as a process: `node dist/bench/peers/pg-boss.js <url> <rows> <delayMs> <workers> <batchSize>`
 * works until `rows` jobs are done, then stops pg-boss gracefully and exits.
 */

export const SCHEMA = "peer_pgboss";
const QUEUE = "peer_user";
const BATCH = 10_000;
const ROW_CONCURRENCY = 32;
const MAX_POOL = 16;

function boss(url: string): PgBoss {
  return new PgBoss({ connectionString: url, schema: SCHEMA, max: MAX_POOL, supervise: false, schedule: false });
}

/** Installs the peer's schema and queue and inserts one job per row of users; the jobs added. */
export async function enqueuePgBossJobs(url: string, pool: pg.Pool): Promise<number> {
  const client = boss(url);
  client.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
  await client.start();
  try {
    await client.createQueue(QUEUE);
    const { rows } = await pool.query<{ first: string; last: string }>(
      "SELECT min(id) AS first, max(id) AS last FROM users",
    );
    let added = 0;
    for (let lo = Number(rows[0]?.first) - 1; lo < Number(rows[0]?.last); lo += BATCH) {
      const { rows: payloads } = await pool.query<{ data: UserPayload }>(
        `SELECT ${PAYLOAD_SQL} AS data FROM users u WHERE u.id > $1 AND u.id <= $2 ORDER BY u.id`,
        [lo, lo + BATCH],
      );
      await client.insert(payloads.map(({ data }) => ({ name: QUEUE, data })));
      added += payloads.length;
    }
    return added;
  } finally {
    await client.stop({ graceful: false, wait: true });
  }
}

async function work(url: string, rows: number, delayMs: number, workers: number, batchSize: number) {
  const client = boss(url);
  client.on("error", (error) => process.stderr.write(`pg-boss: ${error.message}\n`));
  await client.start();
  const db = client.getDb();
  let done = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });
  for (let i = 0; i < workers; i++) {
    await client.work<UserPayload>(QUEUE, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      await mapConcurrent(jobs, ROW_CONCURRENCY, async (job) => {
        await workOnUser((text, values) => db.executeSql(text, values), job.data, delayMs);
      });
      done += jobs.length;
      if (done >= rows) finished();
    });
  }
  await allDone;
  await client.stop({ graceful: true, wait: true, timeout: 30_000 });
}

if (require.main === module) {
  const [url, rows, delayMs, workers, batchSize] = process.argv.slice(2);
  work(url as string, Number(rows), Number(delayMs), Number(workers), Number(batchSize)).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${error?.stack ?? error}\n`);
      process.exit(1);
    },
  );
}
