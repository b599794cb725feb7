import type { PoolClient } from "pg";

export interface RunWorker {
  worker: string;
  runningChunks: number;
  rows: number;
  /** When it last wrote to one of the run's chunks. */
  lastWrite: Date;
  /** Its process's last heartbeat (worker_sessions); null once it has exited. */
  heartbeat: Date | null;
}

/** The workers of a run (the batch_workers view) with their heartbeats, busiest first. */
export async function readRunWorkers(client: PoolClient, runId: number, limit = 50): Promise<RunWorker[]> {
  const { rows } = await client.query<RunWorker>(
    `SELECT w.worker, w.running_chunks AS "runningChunks", w.rows::float8 AS rows, w.last_seen AS "lastWrite",
            (SELECT max(s.last_seen) FROM worker_sessions s WHERE s.pod = w.worker) AS heartbeat
       FROM batch_workers w
      WHERE w.run_id = $1
      ORDER BY w.running_chunks DESC, w.rows DESC, w.worker
      LIMIT $2`,
    [runId, limit],
  );
  return rows;
}
