import type { PoolClient } from "pg";
import { chunkQueueJobKeySql } from "./job-queue";

/**
 * The SQL that finds work no job will do: chunks and steps of active runs whose job is gone or
 * failed for good. The workers' recovery (workflows/recovery.ts) gives each its job or ending.
 */

const CHUNK_QUEUE_JOB_KEY = chunkQueueJobKeySql("c");

/** A chunk of a running round that no job will run, and why. */
export interface StrandedChunk {
  runId: number;
  round: number;
  chunkNo: number;
  chunkMaxAttempts: number;
  /**
   * Its job (the workflow's, with all the attempts the run gives a chunk) failed them all without
   * the chunk being recorded failed; else its job is gone, or one added by hand ran out.
   */
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
            -- a job added by hand under the key with fewer attempts than the run gives its chunks
            -- is not the workflow's: its running out says nothing of the chunk, which gets its
            -- own job back
            j.id IS NOT NULL AND j.max_attempts >= (r.config ->> 'chunkMaxAttempts')::int AS exhausted,
            j.last_error AS "lastError"
       FROM batch_chunks c
       JOIN batch_jobs r ON r.id = c.run_id AND r.round = c.round AND r.status IN ('running', 'cancelling')
       LEFT JOIN graphile_worker.jobs j ON j.key = ${CHUNK_QUEUE_JOB_KEY}
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
             WHERE c.run_id = r.id AND c.round = r.round AND c.status IN ('queued', 'running', 'deferred'))
     )
     SELECT run_id AS "runId", step, round FROM due
      WHERE NOT EXISTS (SELECT 1 FROM graphile_worker.jobs j WHERE j.key = due.key)
      ORDER BY run_id, step`,
  );
  return rows;
}
