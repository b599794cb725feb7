import type { PoolClient } from "pg";
import { ROW_TYPES } from "../db/types";

/**
 * The SQL of batch runs: their summary row (batch_jobs), chunks (batch_chunks) and memoised
 * steps (batch_steps), and the graphile-worker jobs that carry them. Callers own transactions.
 */

export const TASKS = { plan: "batch_plan", chunk: "batch_chunk", finish: "batch_finish" } as const;

/** What a run was started with; every worker reads these from the run, not its environment. */
export interface RunSettings {
  claimSize: number;
  maxAttempts: number;
  retryRounds: number;
  retryDelayMs: number;
  chunkMaxAttempts: number;
  /** What the starter ran with, for the record: each worker's own WORKERS and ROW_CONCURRENCY apply. */
  hints?: { workers: number; rowConcurrency: number };
}

export type RunStatus = "pending" | "running" | "paused" | "cancelling" | "cancelled" | "completed" | "failed";

export interface Run {
  id: number;
  name: string;
  status: RunStatus;
  settings: RunSettings;
  round: number;
  totalRecords: number;
  processedRecords: number;
  failedRecords: number;
  retryableRecords: number;
  chunksTotal: number;
  chunksDone: number;
  startedAt: Date;
  completedAt: Date | null;
  errorMessage: string | null;
}

const RUN_COLUMNS = `
  id, batch_name AS name, status, config AS settings, round,
  total_records AS "totalRecords", processed_records AS "processedRecords",
  failed_records AS "failedRecords", retryable_records AS "retryableRecords",
  chunks_total AS "chunksTotal", chunks_done AS "chunksDone",
  started_at AS "startedAt", completed_at AS "completedAt", error_message AS "errorMessage"`;

export const jobKeys = {
  plan: (runId: number) => `batch:${runId}:plan`,
  chunk: (runId: number, round: number, chunkNo: number) => `batch:${runId}:${round}:chunk:${chunkNo}`,
  finish: (runId: number, round: number) => `batch:${runId}:${round}:finish`,
  /** Every job key of the run starts so. */
  runPrefix: (runId: number) => `batch:${runId}:`,
};

/** The chunk a job key names, if it names one. */
export function parseChunkKey(key: string): { runId: number; round: number; chunkNo: number } | undefined {
  const match = /^batch:(\d+):(\d+):chunk:(\d+)$/.exec(key);
  return match ? { runId: Number(match[1]), round: Number(match[2]), chunkNo: Number(match[3]) } : undefined;
}

/** jobKeys.chunk in SQL, from a batch_chunks row of the given alias. */
export const chunkJobKeySql = (alias: string) =>
  `format('batch:%s:%s:chunk:%s', ${alias}.run_id, ${alias}.round, ${alias}.chunk_no)`;
const CHUNK_JOB_KEY = chunkJobKeySql("c");

/**
 * In SQL, whether a users row (of the given alias) is work for a run allowed `maxAttempts`
 * attempts: pending, or failed with attempts left.
 */
export const claimableSql = (alias: string, maxAttempts: string) =>
  `(${alias}.batch_status = 'pending' OR (${alias}.batch_status = 'failed' AND ${alias}.attempts < ${maxAttempts}))`;

/** Statuses in which a run is over. */
export const ENDED_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(["completed", "failed", "cancelled"]);

/** A job names a run that does not exist (deleted, or never was). */
export class RunMissingError extends Error {
  override name = "RunMissingError";
}

/** Creates the run unless one of that name exists; `created` says which happened. */
export async function insertRun(
  client: PoolClient,
  name: string,
  settings: RunSettings,
  createdBy: string,
): Promise<{ run: Run; created: boolean }> {
  const inserted = await client.query<Run>(
    `INSERT INTO batch_jobs (batch_name, kind, status, config, created_by)
     VALUES ($1, 'process', 'pending', $2, $3)
     ON CONFLICT (batch_name) DO NOTHING
     RETURNING ${RUN_COLUMNS}`,
    [name, settings, createdBy],
  );
  if (inserted.rows[0]) return { run: inserted.rows[0], created: true };
  const existing = await findRunByName(client, name);
  if (!existing) throw new Error(`batch name ${JSON.stringify(name)} is taken by an import record`);
  return { run: existing, created: false };
}

/**
 * Whether any row is work for a new run allowed `maxAttempts` attempts. Plan: a sequential scan
 * that stops at the first such row; it reads the whole table only when there is none, as the
 * plan step would.
 */
export async function hasRowsToProcess(client: PoolClient, maxAttempts: number): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM users u WHERE ${claimableSql("u", "$1")}) AS found`,
    [maxAttempts],
  );
  return rows[0]?.found ?? false;
}

/** The run that is active (one at most: batch_jobs_one_active_run), if any. */
export async function findActiveRun(client: PoolClient): Promise<Run | undefined> {
  const { rows } = await client.query<Run>(
    `SELECT ${RUN_COLUMNS} FROM batch_jobs
      WHERE kind = 'process' AND status IN ('pending', 'running', 'paused', 'cancelling')`,
  );
  return rows[0];
}

export async function findRunByName(client: PoolClient, name: string): Promise<Run | undefined> {
  const { rows } = await client.query<Run>(
    `SELECT ${RUN_COLUMNS} FROM batch_jobs WHERE batch_name = $1 AND kind = 'process'`,
    [name],
  );
  return rows[0];
}

export async function getRun(client: PoolClient, runId: number): Promise<Run | undefined> {
  const { rows } = await client.query<Run>(`SELECT ${RUN_COLUMNS} FROM batch_jobs WHERE id = $1 AND kind = 'process'`, [
    runId,
  ]);
  return rows[0];
}

/**
 * Locks the run's row for the rest of the transaction: its steps, control commands and chunk
 * endings take turns. They lock the run before its chunks, as slices and chunk starts do.
 * Chunk starts take it `shared`: they wait for those, not for each other.
 */
export async function lockRun(
  client: PoolClient,
  runId: number,
  mode: "exclusive" | "shared" = "exclusive",
): Promise<Run> {
  const { rows } = await client.query<Run>(
    `SELECT ${RUN_COLUMNS} FROM batch_jobs WHERE id = $1 AND kind = 'process'
        FOR ${mode === "shared" ? "SHARE" : "NO KEY UPDATE"}`,
    [runId],
  );
  if (!rows[0]) throw new RunMissingError(`batch run ${runId} does not exist`);
  return rows[0];
}

export async function findStepResult(
  client: PoolClient,
  runId: number,
  step: string,
  round: number,
): Promise<{ result: unknown } | undefined> {
  const { rows } = await client.query<{ result: unknown }>(
    "SELECT result FROM batch_steps WHERE run_id = $1 AND step = $2 AND round = $3",
    [runId, step, round],
  );
  return rows[0];
}

export async function recordStep(
  client: PoolClient,
  runId: number,
  step: string,
  round: number,
  result: unknown,
  worker: string,
): Promise<void> {
  await client.query("INSERT INTO batch_steps (run_id, step, round, result, worker) VALUES ($1, $2, $3, $4, $5)", [
    runId,
    step,
    round,
    JSON.stringify(result),
    worker,
  ]);
}

/** Which rows a round works through. */
export type RoundRows = "open" | "retryable";

/** Where a round looks for its rows (id ranges of at most $5 ids), and which rows it takes there. */
const ROUND_ROWS: Record<RoundRows, { ranges: string; rows: string }> = {
  // pending, or failed with attempts left (whichever run failed them), anywhere in the table
  open: {
    ranges: `SELECT b.lo, b.lo + $5 - 1 AS hi
               FROM (SELECT min(id) AS first, max(id) AS last FROM users) t,
                    generate_series(t.first, t.last, $5) AS b(lo)`,
    rows: claimableSql("u", "$4"),
  },
  // what this run failed and may try again, in the chunks of the last round that failed rows
  retryable: {
    ranges: `SELECT b.lo, least(b.lo + $5 - 1, c.last_id) AS hi
               FROM batch_chunks c, generate_series(c.first_id, c.last_id, $5) AS b(lo)
              WHERE c.run_id = $1 AND c.round = $2 - 1 AND c.rows_failed > 0`,
    rows: "u.batch_status = 'failed' AND u.attempts < $4 AND u.batch_id = $1",
  },
};

/** Ranges are this fraction of a chunk's rows wide: a chunk holds `claimSize` rows give or take one range. */
const RANGES_PER_CHUNK = 8;

/**
 * Splits the round's rows into chunks of about `claimSize` rows, each an id range, and records
 * them. The rows are counted range by range along the primary key, without sorting them; in id
 * order, each range joins the chunk its first row's number falls in.
 */
export async function planChunks(
  client: PoolClient,
  runId: number,
  round: number,
  rows: RoundRows,
  settings: RunSettings,
): Promise<{ chunks: number; rows: number }> {
  const { ranges, rows: wanted } = ROUND_ROWS[rows];
  const { rows: planned } = await client.query<{ chunks: number; rows: number }>(
    `WITH ranges AS (${ranges}),
     counted AS (
       SELECT r.lo, c.first_id, c.last_id, c.n
         FROM ranges r
         CROSS JOIN LATERAL (
           SELECT min(u.id) AS first_id, max(u.id) AS last_id, count(*) AS n
             FROM users u WHERE u.id BETWEEN r.lo AND r.hi AND (${wanted})) c
        WHERE c.n > 0
     ), numbered AS (
       SELECT first_id, last_id, n, ((sum(n) OVER (ORDER BY lo))::bigint - n) / $3 AS chunk_no FROM counted
     ), planned AS (
       INSERT INTO batch_chunks (run_id, round, chunk_no, first_id, last_id, planned_rows)
       SELECT $1, $2, chunk_no, min(first_id), max(last_id), sum(n) FROM numbered GROUP BY chunk_no
       RETURNING planned_rows
     )
     SELECT count(*)::int AS chunks, coalesce(sum(planned_rows), 0)::int AS rows FROM planned`,
    [runId, round, settings.claimSize, settings.maxAttempts, Math.ceil(settings.claimSize / RANGES_PER_CHUNK)],
  );
  return planned[0] ?? { chunks: 0, rows: 0 };
}

/**
 * Adds one graphile-worker job per chunk of the round that has not ended, in one call, each
 * with its job key; chunks whose job is running now are left alone.
 */
export async function enqueueChunkJobs(
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
         ${CHUNK_JOB_KEY}, NULL, NULL
       )::graphile_worker.job_spec
         FROM batch_chunks c
        WHERE c.run_id = $1 AND c.round = $2 AND c.status IN ('queued', 'running')
          AND NOT EXISTS (
            SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${CHUNK_JOB_KEY} AND j.locked_at IS NOT NULL)
        ORDER BY c.chunk_no))`,
    [runId, round, TASKS.chunk, delayMs, settings.chunkMaxAttempts],
  );
  return rows[0]?.jobs ?? 0;
}

/**
 * Removes the run's jobs that no worker has started, its chunk jobs only or all of them (steps
 * too); running ones go on.
 */
export async function removeWaitingJobs(client: PoolClient, runId: number, which: "chunks" | "all"): Promise<number> {
  const { rows } = await client.query<{ removed: number }>(
    `SELECT count(graphile_worker.remove_job(key))::int AS removed
       FROM graphile_worker.jobs
      WHERE key LIKE $1 AND locked_at IS NULL`,
    [`${jobKeys.runPrefix(runId)}${which === "chunks" ? "%:chunk:%" : "%"}`],
  );
  return rows[0]?.removed ?? 0;
}

/**
 * Cancels the round's chunks that no worker is running (queued, or left running by a worker
 * that handed them back), and returns how many chunks a worker's job still holds: those end
 * when their job sees the cancel.
 */
export async function cancelIdleChunks(client: PoolClient, runId: number, round: number): Promise<{ running: number }> {
  const { rows } = await client.query<{ running: number }>(
    `WITH idle AS (
       UPDATE batch_chunks c SET status = 'cancelled', finished_at = now(), updated_at = now()
        WHERE c.run_id = $1 AND c.round = $2 AND c.status IN ('queued', 'running')
          AND NOT EXISTS (
            SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${CHUNK_JOB_KEY} AND j.locked_at IS NOT NULL)
       RETURNING c.chunk_no
     )
     SELECT count(*)::int AS running FROM batch_chunks
      WHERE run_id = $1 AND round = $2 AND status IN ('queued', 'running')
        AND chunk_no NOT IN (SELECT chunk_no FROM idle)`,
    [runId, round],
  );
  return rows[0] ?? { running: 0 };
}

/**
 * The run's chunks that have not ended (queued or running), in one round or in all of them. A
 * queued chunk counts: its job may have been taken already, and it ends when that job runs.
 */
export async function countOpenChunks(client: PoolClient, runId: number, round?: number): Promise<number> {
  const { rows } = await client.query<{ open: number }>(
    `SELECT count(*)::int AS open FROM batch_chunks
      WHERE run_id = $1 AND ($2::int IS NULL OR round = $2) AND status IN ('queued', 'running')`,
    [runId, round ?? null],
  );
  return rows[0]?.open ?? 0;
}

export async function setRunStatus(client: PoolClient, runId: number, status: RunStatus): Promise<void> {
  const ended = ENDED_RUN_STATUSES.has(status);
  await client.query(
    `UPDATE batch_jobs SET status = $2, updated_at = now(), completed_at = CASE WHEN $3 THEN now() END
      WHERE id = $1`,
    [runId, status, ended],
  );
}

export interface EventDetails {
  step: "start" | "plan" | "chunk" | "finish" | "control";
  actor: string;
  round?: number;
  chunkNo?: number;
  /** Merged into the run's counters at this moment. */
  counts?: Record<string, number>;
  detail?: string;
}

/** Appends to the run's history, with the run's counters as they are in this transaction. */
export async function appendEvent(client: PoolClient, runId: number, event: string, details: EventDetails) {
  await client.query(
    `INSERT INTO batch_events (run_id, event, step, round, chunk_no, actor, counts, detail)
     SELECT id, $2, $3, $4, $5, $6,
            jsonb_build_object('total', total_records, 'completed', processed_records,
                               'failed', failed_records, 'retryable', retryable_records) || $7::jsonb,
            $8
       FROM batch_jobs WHERE id = $1`,
    [
      runId,
      event,
      details.step,
      details.round ?? null,
      details.chunkNo ?? null,
      details.actor,
      JSON.stringify(details.counts ?? {}),
      details.detail ?? null,
    ],
  );
}

export interface RunEvent {
  id: number;
  at: Date;
  event: string;
  step: string;
  round: number | null;
  chunkNo: number | null;
  actor: string;
  counts: Record<string, number>;
  detail: string | null;
}

export async function listEvents(client: PoolClient, runId: number): Promise<RunEvent[]> {
  const { rows } = await client.query<RunEvent>(
    `SELECT id::int, at, event, step, round, chunk_no AS "chunkNo", actor, counts, detail
       FROM batch_events WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return rows;
}

/** Adds (or, under an existing key, replaces) one graphile-worker job, in the caller's transaction. */
export async function addJob(
  client: PoolClient,
  task: string,
  payload: object,
  jobKey: string,
  maxAttempts: number,
): Promise<void> {
  await client.query("SELECT graphile_worker.add_job($1, $2::json, job_key := $3, max_attempts := $4)", [
    task,
    JSON.stringify(payload),
    jobKey,
    maxAttempts,
  ]);
}

export type ChunkStatus = "queued" | "running" | "done" | "failed" | "cancelled";

/** Statuses in which a chunk has not ended: its rows may still be processed. */
export const OPEN_CHUNK_STATUSES: ReadonlySet<ChunkStatus> = new Set(["queued", "running"]);

/** The chunk's status; undefined when its run has no such chunk. */
export async function findChunkStatus(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
): Promise<ChunkStatus | undefined> {
  const { rows } = await client.query<{ status: ChunkStatus }>(
    "SELECT status FROM batch_chunks WHERE run_id = $1 AND round = $2 AND chunk_no = $3",
    [runId, round, chunkNo],
  );
  return rows[0]?.status;
}

/** Where a chunk's rows are, and since when they are its round's. */
export interface ChunkRange {
  firstId: number;
  lastId: number;
  plannedAt: Date;
}

/** Marks the chunk running on this worker (the caller has checked it may run) and returns its range. */
export async function markChunkRunning(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
  worker: string,
): Promise<ChunkRange> {
  const { rows } = await client.query<ChunkRange>({
    text: `UPDATE batch_chunks
              SET status = 'running', worker = $4, attempts = attempts + 1, started_at = now(), updated_at = now()
            WHERE run_id = $1 AND round = $2 AND chunk_no = $3
           RETURNING first_id AS "firstId", last_id AS "lastId", planned_at AS "plannedAt"`,
    values: [runId, round, chunkNo, worker],
    types: ROW_TYPES,
  });
  if (!rows[0]) throw new Error(`chunk ${chunkNo} of round ${round} of batch run ${runId} vanished`);
  return rows[0];
}

/** Rows of the range still claimable in this round: rows another transaction held locked. */
export async function countLeftInRange(
  client: PoolClient,
  firstId: number,
  lastId: number,
  maxAttempts: number,
  plannedAt: Date,
): Promise<number> {
  const { rows } = await client.query<{ left: number }>(
    `SELECT count(*)::int AS left FROM users u
      WHERE u.id BETWEEN $1 AND $2 AND ${claimableSql("u", "$3")}
        AND (u.processed_at IS NULL OR u.processed_at < $4)`,
    [firstId, lastId, maxAttempts, plannedAt],
  );
  return rows[0]?.left ?? 0;
}

export type ChunkEnding = { status: "done" } | { status: "cancelled" } | { status: "failed"; error: string };

/**
 * Ends a chunk (done, failed for good, or stopped by a cancel) and counts it toward its round. Returns true for the
 * transaction that ended the round's last chunk: the row lock on batch_jobs makes exactly one
 * transaction see chunks_done reach chunks_total.
 */
export async function endChunk(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
  outcome: ChunkEnding,
): Promise<{ ended: boolean; lastOfRound: boolean; rowsCompleted: number; rowsFailed: number }> {
  const { rows } = await client.query<{ last: boolean; rowsCompleted: number; rowsFailed: number }>(
    `WITH chunk AS (
       UPDATE batch_chunks
          SET status = $4, last_error = $5, finished_at = now(), updated_at = now()
        WHERE run_id = $1 AND round = $2 AND chunk_no = $3 AND status IN ('queued', 'running')
       RETURNING run_id, rows_completed, rows_failed
     ), run AS (
       UPDATE batch_jobs r
          SET chunks_done = chunks_done + 1, updated_at = now()
         FROM chunk
        WHERE r.id = chunk.run_id AND r.round = $2
       RETURNING r.chunks_done = r.chunks_total AS last
     )
     SELECT run.last, chunk.rows_completed AS "rowsCompleted", chunk.rows_failed AS "rowsFailed" FROM run, chunk`,
    [runId, round, chunkNo, outcome.status, outcome.status === "failed" ? outcome.error : null],
  );
  const row = rows[0];
  return {
    ended: row !== undefined,
    lastOfRound: row?.last ?? false,
    rowsCompleted: row?.rowsCompleted ?? 0,
    rowsFailed: row?.rowsFailed ?? 0,
  };
}

/** A chunk of a running round that no job will run, and why. */
export interface StrandedChunk {
  runId: number;
  round: number;
  chunkNo: number;
  chunkMaxAttempts: number;
  /** Its job failed all its attempts without the chunk being recorded failed; else its job is gone. */
  exhausted: boolean;
  lastError: string | null;
}

/**
 * Chunks of running (or cancelling) runs' current rounds that would keep their round from
 * ending (or the cancel from settling): their job is gone (it ended while the run was paused,
 * and the resume found it still running; or a job refused under its key gave the key up) or it
 * failed its last attempt without the chunk failing with it (the database was unreachable).
 */
export async function findStrandedChunks(client: PoolClient): Promise<StrandedChunk[]> {
  const { rows } = await client.query<StrandedChunk>(
    `SELECT c.run_id AS "runId", c.round, c.chunk_no AS "chunkNo",
            (r.config ->> 'chunkMaxAttempts')::int AS "chunkMaxAttempts",
            j.id IS NOT NULL AS exhausted, j.last_error AS "lastError"
       FROM batch_chunks c
       JOIN batch_jobs r ON r.id = c.run_id AND r.round = c.round AND r.status IN ('running', 'cancelling')
       LEFT JOIN graphile_worker.jobs j ON j.key = ${CHUNK_JOB_KEY}
      WHERE c.status IN ('queued', 'running')
        AND (j.id IS NULL OR (j.locked_at IS NULL AND j.attempts >= j.max_attempts))
      ORDER BY c.run_id, c.chunk_no`,
  );
  return rows;
}

/** A workflow step that is due, with no job to run it. */
export interface StrandedStep {
  runId: number;
  step: "plan" | "finish";
  round: number;
}

/**
 * Steps of active runs that no job will run: the plan of a run not yet planned, or the finish
 * of a current round whose chunks have all ended. The start and the last chunk ending add those
 * jobs in their own transactions, so one is missing only when it was removed, or replaced under
 * its key by a job that was then refused and gave the key up. A job that failed all its
 * attempts is not missing: the step failed, and is left for a person to look at.
 */
export async function findStrandedSteps(client: PoolClient): Promise<StrandedStep[]> {
  const { rows } = await client.query<StrandedStep>(
    `WITH due AS (
       SELECT r.id AS run_id, 'plan' AS step, 0 AS round, format('batch:%s:plan', r.id) AS key
         FROM batch_jobs r
        WHERE r.kind = 'process' AND r.status IN ('pending', 'paused')
          AND NOT EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = 'plan')
       UNION ALL
       SELECT r.id, 'finish', r.round, format('batch:%s:%s:finish', r.id, r.round)
         FROM batch_jobs r
        WHERE r.kind = 'process' AND r.status IN ('running', 'paused')
          AND EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = 'plan')
          AND NOT EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = 'finish' AND s.round = r.round)
          AND NOT EXISTS (
            SELECT 1 FROM batch_chunks c
             WHERE c.run_id = r.id AND c.round = r.round AND c.status IN ('queued', 'running'))
     )
     SELECT run_id AS "runId", step, round FROM due
      WHERE NOT EXISTS (SELECT 1 FROM graphile_worker.jobs j WHERE j.key = due.key)
      ORDER BY run_id, step`,
  );
  return rows;
}

export async function failedChunks(
  client: PoolClient,
  runId: number,
  round: number,
): Promise<{ count: number; firstError: string | null }> {
  const { rows } = await client.query<{ count: number; firstError: string | null }>(
    `SELECT count(*)::int AS count, (array_agg(last_error ORDER BY chunk_no))[1] AS "firstError"
       FROM batch_chunks WHERE run_id = $1 AND round = $2 AND status = 'failed'`,
    [runId, round],
  );
  return rows[0] ?? { count: 0, firstError: null };
}

/**
 * Starts round `round` of a planned run: its chunks are recorded, its jobs about to be added.
 * A paused run stays paused (its jobs are added when it resumes).
 */
export async function beginRound(
  client: PoolClient,
  runId: number,
  round: number,
  planned: { chunks: number; rows: number },
): Promise<void> {
  await client.query(
    `UPDATE batch_jobs
        SET status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'running' END,
            round = $2, chunks_total = $3, chunks_done = 0,
            total_records = CASE WHEN $2 = 0 THEN $4 ELSE total_records END, updated_at = now()
      WHERE id = $1`,
    [runId, round, planned.chunks, planned.rows],
  );
}

/**
 * Ends the run. Rows still retryable when it completes have no attempt coming in this run, so
 * they count as failed from then on.
 */
export async function endRun(
  client: PoolClient,
  runId: number,
  outcome: { status: "completed" } | { status: "failed"; error: string },
): Promise<void> {
  await client.query(
    `UPDATE batch_jobs
        SET status = $2, error_message = $3, completed_at = now(), updated_at = now(),
            failed_records = failed_records + retryable_records, retryable_records = 0
      WHERE id = $1`,
    [runId, outcome.status, outcome.status === "failed" ? outcome.error : null],
  );
}
