import type { PoolClient } from "pg";
import type { JobDefinition } from "../jobs/define";
import { jobSql, type RowScope } from "../jobs/job-sql";
import { RunMissingError } from "./errors";
import { ENDED_RUN_STATUSES, type Run, type RunSettings, type RunStatus, type RunSubset } from "./model";

/**
 * The SQL of a run's summary row (batch_jobs): its status, round and counters. Callers own
 * transactions.
 */

const RUN_COLUMNS = `
  id, batch_name AS name, job, status, config AS settings, round,
  total_records AS "totalRecords", processed_records AS "completedRecords",
  failed_records AS "failedRecords", retryable_records AS "retryableRecords",
  chunks_total AS "chunksTotal", chunks_done AS "chunksDone",
  started_at AS "startedAt", completed_at AS "completedAt", error_message AS "errorMessage"`;

/** Creates the job's run unless one of that name exists; `created` says which happened. */
export async function insertRun(
  client: PoolClient,
  name: string,
  job: string,
  settings: RunSettings,
  createdBy: string,
): Promise<{ run: Run; created: boolean }> {
  const inserted = await client.query<Run>(
    `INSERT INTO batch_jobs (batch_name, job, kind, status, config, created_by)
     VALUES ($1, $2, 'process', 'pending', $3, $4)
     ON CONFLICT (batch_name) DO NOTHING
     RETURNING ${RUN_COLUMNS}`,
    [name, job, settings, createdBy],
  );
  if (inserted.rows[0]) return { run: inserted.rows[0], created: true };
  const existing = await findRunByName(client, name);
  if (!existing) throw new Error(`batch name ${JSON.stringify(name)} is taken by an import record`);
  return { run: existing, created: false };
}

/**
 * A run row that only a transaction about to roll back sees: a dry run over a file's keys loads
 * them as this run's (batch_run_keys refers to a run). Ended, so that it takes no job's active
 * slot; named at random, so that it meets no run's name.
 */
export async function insertRehearsalRun(client: PoolClient, job: string): Promise<number> {
  const { rows } = await client.query<{ id: number }>(
    `INSERT INTO batch_jobs (batch_name, job, kind, status, config, created_by)
     VALUES ('dry run ' || gen_random_uuid(), $1, 'process', 'cancelled', '{}', 'dry run')
     RETURNING id`,
    [job],
  );
  return rows[0]?.id as number;
}

/**
 * Whether any row of the job's table (of the run's subset, with `scope`) is work for a new run
 * allowed `maxAttempts` attempts.
 * Plan: a sequential scan that stops at the first such row; it reads the whole table only when
 * there is none, as the plan step would.
 */
export async function hasRowsToProcess(
  client: PoolClient,
  job: JobDefinition,
  maxAttempts: number,
  scope?: RowScope,
): Promise<boolean> {
  const sql = jobSql(job, scope);
  const { rows } = await client.query<{ found: boolean }>(sql.hasRowsToProcess, [maxAttempts, ...sql.filterValues]);
  return rows[0]?.found ?? false;
}

/** Records the run's subset in its settings: a file's keys, counted once loaded. */
export async function setRunSubset(client: PoolClient, runId: number, subset: RunSubset): Promise<void> {
  await client.query("UPDATE batch_jobs SET config = jsonb_set(config, '{subset}', $2::jsonb) WHERE id = $1", [
    runId,
    JSON.stringify(subset),
  ]);
}

/**
 * Gives back their attempts to the rows of the job that run `runId` failed, and returns how many.
 * Those rows stay locked until the caller's transaction ends.
 */
export async function resetFailedAttempts(client: PoolClient, job: JobDefinition, runId: number): Promise<number> {
  const sql = jobSql(job);
  const { rows } = await client.query<{ rows: number }>(sql.resetFailedAttempts, [runId, ...sql.filterValues]);
  return rows[0]?.rows ?? 0;
}

/** The job's run that is active (one at most: batch_jobs_one_active_run), if any. */
export async function findActiveRun(client: PoolClient, job: string): Promise<Run | undefined> {
  const { rows } = await client.query<Run>(
    `SELECT ${RUN_COLUMNS} FROM batch_jobs
      WHERE kind = 'process' AND job = $1 AND status IN ('pending', 'running', 'paused', 'cancelling')`,
    [job],
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

export async function setRunStatus(client: PoolClient, runId: number, status: RunStatus): Promise<void> {
  const ended = ENDED_RUN_STATUSES.has(status);
  await client.query(
    `UPDATE batch_jobs SET status = $2, updated_at = now(), completed_at = CASE WHEN $3 THEN now() END
      WHERE id = $1`,
    [runId, status, ended],
  );
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

/**
 * Takes an ended run up again for `rows` rows it failed, their attempts given back: they move from
 * failed_records to retryable_records, so that the counters still add up, and the run runs again
 * (beginRound then starts its new round). Locks the run's row, which the caller holds already.
 */
export async function reopenRun(client: PoolClient, runId: number, rows: number): Promise<void> {
  await client.query(
    `UPDATE batch_jobs
        SET status = 'running', completed_at = NULL, error_message = NULL, updated_at = now(),
            failed_records = failed_records - $2, retryable_records = retryable_records + $2
      WHERE id = $1`,
    [runId, rows],
  );
}

/**
 * Adds to the run's time waited for its rate limit's tokens what a chunk's slices did not count
 * with their outcomes (the wait of a slice that found no rows). Locks the run's row for this
 * one statement.
 */
export async function addRateLimitWait(client: PoolClient, runId: number, seconds: number): Promise<void> {
  await client.query("UPDATE batch_jobs SET rate_limit_waited_seconds = rate_limit_waited_seconds + $2 WHERE id = $1", [
    runId,
    seconds,
  ]);
}
