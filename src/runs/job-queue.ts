import type { PoolClient } from "pg";
import type { RunSettings } from "./model";

/**
 * The graphile-worker jobs that carry a run: its tasks, the job keys that make each step and
 * chunk one job at most, and the SQL that adds and removes them. Callers own transactions.
 */

export const TASKS = {
  plan: "batch_plan",
  chunk: "batch_chunk",
  finish: "batch_finish",
  schedule: "batch_schedule",
} as const;

/** Steps only touch the database: graphile-worker's default attempts and backoff suit them. */
export const STEP_MAX_ATTEMPTS = 25;

export const queueJobKeys = {
  plan: (runId: number) => `batch:${runId}:plan`,
  chunk: (runId: number, round: number, chunkNo: number) => `batch:${runId}:${round}:chunk:${chunkNo}`,
  finish: (runId: number, round: number) => `batch:${runId}:${round}:finish`,
  /** A scheduled job's next tick: one queue job per job, moved rather than added again. */
  schedule: (job: string) => `schedule:${job}`,
  /** Every job key of the run starts so. */
  runPrefix: (runId: number) => `batch:${runId}:`,
};

/** The chunk a job key names, if it names one. */
export function parseChunkKey(key: string): { runId: number; round: number; chunkNo: number } | undefined {
  const match = /^batch:(\d+):(\d+):chunk:(\d+)$/.exec(key);
  return match ? { runId: Number(match[1]), round: Number(match[2]), chunkNo: Number(match[3]) } : undefined;
}

/** queueJobKeys.chunk in SQL, from a batch_chunks row of the given alias. */
export const chunkQueueJobKeySql = (alias: string) =>
  `format('batch:%s:%s:chunk:%s', ${alias}.run_id, ${alias}.round, ${alias}.chunk_no)`;

/**
 * Adds (or, under an existing key, replaces) one graphile-worker job, in the caller's
 * transaction, due at `runAt` (now when left out).
 */
export async function addQueueJob(
  client: PoolClient,
  task: string,
  payload: object,
  jobKey: string,
  maxAttempts: number,
  runAt?: Date,
): Promise<void> {
  await client.query(
    "SELECT graphile_worker.add_job($1, $2::json, job_key := $3, max_attempts := $4, run_at := $5::timestamptz)",
    [task, JSON.stringify(payload), jobKey, maxAttempts, runAt ?? null],
  );
}

/**
 * Adds one graphile-worker job per chunk of the round that has not ended, in one call, each
 * with its job key; chunks whose job is running now are left alone.
 */
export async function enqueueChunkQueueJobs(
  client: PoolClient,
  runId: number,
  round: number,
  delayMs: number,
  settings: RunSettings,
): Promise<number> {
  const { rows } = await client.query<{ jobs: number }>(
    `SELECT count(*)::int AS jobs FROM graphile_worker.add_jobs(ARRAY(
       SELECT ROW(
         $3::text,
         json_build_object('run', c.run_id, 'round', c.round, 'chunk', c.chunk_no),
         NULL, now() + make_interval(secs => $4::double precision / 1000), $5::int,
         ${chunkQueueJobKeySql("c")}, NULL, NULL
       )::graphile_worker.job_spec
         FROM batch_chunks c
        WHERE c.run_id = $1 AND c.round = $2 AND c.status IN ('queued', 'running')
          AND NOT EXISTS (
            SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${chunkQueueJobKeySql("c")} AND j.locked_at IS NOT NULL)
        ORDER BY c.chunk_no))`,
    [runId, round, TASKS.chunk, delayMs, settings.chunkMaxAttempts],
  );
  return rows[0]?.jobs ?? 0;
}

/**
 * Removes the run's jobs that no worker has started, its chunk jobs only or all of them (steps
 * too); running ones go on.
 */
export async function removeWaitingQueueJobs(
  client: PoolClient,
  runId: number,
  which: "chunks" | "all",
): Promise<number> {
  const { rows } = await client.query<{ removed: number }>(
    `SELECT count(graphile_worker.remove_job(key))::int AS removed
       FROM graphile_worker.jobs
      WHERE key LIKE $1 AND locked_at IS NULL`,
    [`${queueJobKeys.runPrefix(runId)}${which === "chunks" ? "%:chunk:%" : "%"}`],
  );
  return rows[0]?.removed ?? 0;
}
