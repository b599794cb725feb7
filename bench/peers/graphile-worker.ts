import { Logger, run, runMigrations } from "graphile-worker";
import pg from "pg";
import { PAYLOAD_SQL, type UserPayload, workOnUser } from "./users-record";

/**
 * Peer: graphile-worker with one job per row. Jobs are added in bulk, BATCH rows per
 * `add_jobs` call (the row in the payload), in a schema of their own (SCHEMA); the runner works
 * them with `concurrency` jobs at once (the bench uses WORKERS × ROW_CONCURRENCY, 128), a
 * local queue (a batch of jobs fetched and locked at once: `concurrency` + 1, graphile-worker's
 * advice) and completions batched per tick (completeJobBatchDelay 0), and MAX_POOL connections.
 * Each job waits `delayMs`, runs jobs/users.ts and writes its row (bench/peers/users-record.ts).
 *
 * Run as a process: `node dist/bench/peers/graphile-worker.js <url> <rows> <delayMs> <concurrency>`
 * works until `rows` jobs are done, then stops its runner and exits.
 */

export const SCHEMA = "peer_graphile_worker";
const TASK = "peer_user";
const BATCH = 10_000;
const MAX_POOL = 16;

const quiet = new Logger(() => (level, message) => {
  if (level === "error") process.stderr.write(`${message}\n`);
});

/** Installs the peer's schema and adds one job per row of users; the jobs added. */
export async function enqueueGraphileWorkerJobs(url: string, pool: pg.Pool): Promise<number> {
  await runMigrations({ connectionString: url, schema: SCHEMA, logger: quiet });
  const { rows } = await pool.query<{ first: string; last: string }>(
    "SELECT min(id) AS first, max(id) AS last FROM users",
  );
  let added = 0;
  for (let lo = Number(rows[0]?.first) - 1; lo < Number(rows[0]?.last); lo += BATCH) {
    const { rows: count } = await pool.query(
      `SELECT count(*)::int AS n FROM ${SCHEMA}.add_jobs(array(
         SELECT json_populate_record(null::${SCHEMA}.job_spec,
                  json_build_object('identifier', '${TASK}', 'payload', ${PAYLOAD_SQL}))
           FROM users u WHERE u.id > $1 AND u.id <= $2 ORDER BY u.id))`,
      [lo, lo + BATCH],
    );
    added += count[0].n;
  }
  return added;
}

async function work(url: string, rows: number, delayMs: number, concurrency: number): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: MAX_POOL });
  pool.on("error", (error) => process.stderr.write(`pool: ${error.message}\n`));
  let done = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const runner = await run({
    pgPool: pool,
    schema: SCHEMA,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quiet,
    preset: { worker: { localQueue: { size: concurrency + 1 }, completeJobBatchDelay: 0 } },
    taskList: {
      [TASK]: async (payload, helpers) => {
        await workOnUser((text, values) => helpers.query(text, values), payload as UserPayload, delayMs);
        if (++done === rows) finished();
      },
    },
  });
  await allDone;
  await runner.stop();
  await pool.end();
}

if (require.main === module) {
  const [url, rows, delayMs, concurrency] = process.argv.slice(2);
  work(url as string, Number(rows), Number(delayMs), Number(concurrency)).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${error?.stack ?? error}\n`);
      process.exit(1);
    },
  );
}
