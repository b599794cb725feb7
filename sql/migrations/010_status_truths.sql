-- What status shows, made true where it was not. The views below read graphile-worker's jobs
-- through its public view, by key, as batch_backlog does (009): whether a chunk runs, and when
-- it is due, is known there only. Neither reads users.

-- No run ever takes a 'processing' row (a claim is a row lock, never a status: see
-- src/chunks/slice.ts), so a file may no longer bring one in: the import refuses it with its
-- file and line. NOT VALID: rows an adopted table holds already are not checked.
ALTER TABLE users DROP CONSTRAINT users_batch_status_check;
ALTER TABLE users ADD CONSTRAINT users_batch_status_check
  CHECK (batch_status IN ('pending', 'completed', 'failed', 'cancelled')) NOT VALID;

-- A chunk runs on a worker while its job is locked. A worker that stops hands its chunks back
-- (a fresh job under the same key) and leaves them 'running' until the next worker starts
-- them: counting the status alone listed a worker that had exited as running them.
CREATE OR REPLACE VIEW batch_workers AS
SELECT c.run_id,
       c.worker,
       count(*) FILTER (WHERE c.status = 'running' AND q.locked_at IS NOT NULL)::int AS running_chunks,
       sum(c.rows_completed + c.rows_failed)::bigint AS rows,
       max(c.updated_at) AS last_seen
  FROM batch_chunks c
  LEFT JOIN graphile_worker.jobs q ON q.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
 WHERE c.worker IS NOT NULL
 GROUP BY c.run_id, c.worker;

-- While a running run waits (a retry round's delay, or every chunk left backing off after a
-- failure), nothing runs before its first chunk job is due: `waiting_until`. The ETA counts that
-- wait, then the work left at the current rate; it no longer counts down to 0 while nothing runs.
CREATE OR REPLACE VIEW batch_progress AS
SELECT j.id,
       j.batch_name,
       j.status,
       j.round,
       j.total_records AS total,
       j.processed_records AS completed,
       j.failed_records AS failed,
       j.retryable_records AS retrying,
       greatest(j.total_records - j.processed_records - j.failed_records - j.retryable_records, 0) AS pending,
       round(100.0 * (j.processed_records + j.failed_records) / nullif(j.total_records, 0), 1) AS percent_done,
       rate.rows_per_second,
       CASE WHEN j.status = 'running' AND rate.rows_per_second > 0
            THEN ceil(greatest(extract(epoch FROM wait.due_at - now()), 0)
                      + (j.total_records - j.processed_records - j.failed_records) / rate.rows_per_second)::int
       END AS eta_seconds,
       j.started_at,
       j.completed_at,
       wait.due_at AS waiting_until
  FROM batch_jobs j
  LEFT JOIN LATERAL (
    SELECT CASE
             WHEN j.completed_at IS NOT NULL THEN
               round((j.processed_records + j.failed_records)::numeric
                     / greatest(extract(epoch FROM j.completed_at - j.started_at)::numeric, 0.001), 1)
             ELSE (SELECT round((j.processed_records + j.failed_records - s.done)::numeric
                                / greatest(extract(epoch FROM now() - s.at)::numeric, 0.001), 1)
                     FROM batch_samples s
                    WHERE s.run_id = j.id AND s.at >= now() - interval '60 seconds'
                    ORDER BY s.bucket
                    LIMIT 1)
           END AS rows_per_second
  ) rate ON true
  -- the chunks of the current round that will run: none runs or is due yet, the first at `due_at`
  LEFT JOIN LATERAL (
    SELECT min(q.run_at) AS due_at
      FROM batch_chunks c
      JOIN graphile_worker.jobs q ON q.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
     WHERE j.status = 'running' AND c.run_id = j.id AND c.round = j.round AND c.status IN ('queued', 'running')
       AND (q.locked_at IS NOT NULL OR q.attempts < q.max_attempts)
    HAVING bool_and(q.locked_at IS NULL AND q.run_at > now())
  ) wait ON true
 WHERE j.kind = 'process';
