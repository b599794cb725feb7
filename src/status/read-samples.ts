import type { PoolClient } from "pg";

/** A point of a run's progress: rows done (completed or failed for good) at a moment. */
export interface ProgressPoint {
  at: Date;
  done: number;
  /** Rows per second since the point before; null for the first. */
  rowsPerSecond: number | null;
}

/**
 * A run's progress over time, oldest first: its samples (batch_samples, at most one per
 * 5-second bucket: src/chunks/slice.ts), the newest `limit` of them, then its counters as they
 * are now (or were when it ended), so the last point moves with every slice. Reads no users row.
 */
export async function readProgressPoints(client: PoolClient, runId: number, limit = 2000): Promise<ProgressPoint[]> {
  const { rows } = await client.query<ProgressPoint>(
    `WITH points AS (
       (SELECT at, done FROM batch_samples WHERE run_id = $1 ORDER BY bucket DESC LIMIT $2)
       UNION ALL
       SELECT coalesce(completed_at, now()), processed_records + failed_records FROM batch_jobs WHERE id = $1
     )
     SELECT at, done::float8 AS done,
            round((done - lag(done) OVER w)::numeric
                  / nullif(extract(epoch FROM at - lag(at) OVER w), 0), 1)::float8 AS "rowsPerSecond"
       FROM points
     WINDOW w AS (ORDER BY at, done)
      ORDER BY at, done`,
    [runId, limit],
  );
  return rows;
}
