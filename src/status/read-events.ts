import type { PoolClient } from "pg";
import type { RunEvent } from "../runs/model";

/**
 * The newest `limit` events of a run's history, newest first, and how many it has: a page that
 * polls every second reads a few index entries, where a long history (an event per chunk) would
 * cost it all (listEvents, src/runs/events.ts, reads it whole, oldest first).
 */
export async function readNewestEvents(
  client: PoolClient,
  runId: number,
  limit: number,
): Promise<{ total: number; events: RunEvent[] }> {
  const { rows } = await client.query<RunEvent>(
    `SELECT id::int, at, event, step, round, chunk_no AS "chunkNo", actor, counts, detail
       FROM batch_events WHERE run_id = $1 ORDER BY id DESC LIMIT $2`,
    [runId, limit],
  );
  const count = await client.query<{ total: number }>(
    "SELECT count(*)::int AS total FROM batch_events WHERE run_id = $1",
    [runId],
  );
  return { total: count.rows[0]?.total ?? rows.length, events: rows };
}
