import type { PoolClient } from "pg";
import { KEY_TYPES } from "../db/types";

/**
 * What a slice's outcomes add to its run's and its chunk's counters (batch_jobs, batch_chunks),
 * to the run's errors by message (batch_errors) and its progress samples (batch_samples): written
 * in the slice's transaction, after its outcomes, so that they commit together. Callers own
 * transactions.
 */

/** Failed attempts by message; sorted, so that concurrent slices lock the rows in one order. */
const COUNT_ERRORS = `
  INSERT INTO batch_errors (run_id, message, attempts, last_seen)
  SELECT $1, left(message, 500), count(*), now() FROM unnest($2::text[]) AS e(message) GROUP BY 2 ORDER BY 2
  ON CONFLICT (run_id, message)
  DO UPDATE SET attempts = batch_errors.attempts + excluded.attempts, last_seen = excluded.last_seen`;

/**
 * The run's and the chunk's counters, and the run's progress sample, the last statement before
 * COMMIT. Every slice of the run updates the run's row, so its lock is taken last and held only
 * for the commit; the chunk is updated from the run's row, after it, the order control commands
 * lock them in too. Only a chunk that has not ended, of a run that has not ended, counts: the
 * slice finds none (and is rolled back) when another job ended the chunk while it ran.
 */
const COUNT_OUTCOMES = `
  WITH run AS (
    UPDATE batch_jobs
       SET processed_records = processed_records + $2,
           failed_records = failed_records + $3,
           retryable_records = retryable_records + $4,
           rate_limit_waited_seconds = rate_limit_waited_seconds + $8,
           updated_at = now()
     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
    RETURNING id, status, processed_records + failed_records AS done
  ), chunk AS (
    UPDATE batch_chunks c
       SET rows_completed = rows_completed + $2, rows_failed = rows_failed + $5, updated_at = now()
      FROM run
     WHERE c.run_id = run.id AND c.round = $6 AND c.chunk_no = $7 AND c.status IN ('queued', 'running')
    RETURNING c.last_id
  ), sample AS (
    INSERT INTO batch_samples (run_id, bucket, at, done)
    SELECT id, floor(extract(epoch FROM now()) / 5), now(), done FROM run
    ON CONFLICT DO NOTHING
  )
  SELECT run.status, chunk.last_id AS "chunkLastId" FROM run, chunk`;

/** The outcomes of a slice's rows, as its run's and chunk's counters take them. */
export interface SliceCounts {
  runId: number;
  round: number;
  chunkNo: number;
  completed: number;
  /** Rows failed for good (no attempts left). */
  failed: number;
  /** Rows failed with attempts left. */
  retryable: number;
  /** Claimed rows this run had failed before: they leave its retryable count. */
  retriedFromThisRun: number;
  /** The error of each failed attempt. */
  errors: string[];
  /** Seconds the chunk waited for its rate limit's tokens, for the run's total. */
  tokenWaitSeconds: number;
}

/**
 * Counts a slice's outcomes: returns the run's status and the chunk's last key after it, or
 * undefined when the chunk (or its run) had ended, and nothing was counted.
 */
export async function countSliceOutcomes(
  client: PoolClient,
  counts: SliceCounts,
): Promise<{ status: string; chunkLastId: bigint } | undefined> {
  if (counts.errors.length > 0) {
    await client.query({ name: "count-errors", text: COUNT_ERRORS, values: [counts.runId, counts.errors] });
  }
  const { rows } = await client.query<{ status: string; chunkLastId: bigint }>({
    name: "count-outcomes",
    text: COUNT_OUTCOMES,
    values: [
      counts.runId,
      counts.completed,
      counts.failed,
      counts.retryable - counts.retriedFromThisRun,
      counts.failed + counts.retryable,
      counts.round,
      counts.chunkNo,
      counts.tokenWaitSeconds,
    ],
    types: KEY_TYPES,
  });
  return rows[0];
}
