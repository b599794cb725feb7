import type { PoolClient } from "pg";
import type { EventDetails, RunEvent } from "./model";

/** The SQL of a run's history (batch_events): every state change, with the run's counters then. */

/**
 * Appends to the run's history, with the run's counters as they are in this transaction (and,
 * once its chunks have waited for a rate limit, the seconds they waited).
 */
export async function appendEvent(client: PoolClient, runId: number, event: string, details: EventDetails) {
  await client.query(
    `INSERT INTO batch_events (run_id, event, step, round, chunk_no, actor, counts, detail)
     SELECT id, $2, $3, $4, $5, $6,
            jsonb_build_object('total', total_records, 'completed', processed_records,
                               'failed', failed_records, 'retryable', retryable_records)
            -- a run of a rate-limited job: the seconds its chunks have waited for tokens so far
            || CASE WHEN rate_limit_waited_seconds > 0
                    THEN jsonb_build_object('rateLimitWaitedSeconds', round(rate_limit_waited_seconds::numeric, 1))
                    ELSE '{}' END
            || $7::jsonb,
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

export async function listEvents(client: PoolClient, runId: number): Promise<RunEvent[]> {
  const { rows } = await client.query<RunEvent>(
    `SELECT id::int, at, event, step, round, chunk_no AS "chunkNo", actor, counts, detail
       FROM batch_events WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return rows;
}
