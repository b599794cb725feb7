-- A sampled plan (src/runs/chunks.ts, above 2,000,000 rows) starts a run with an estimate of its
-- total, made exact chunk by chunk as chunks end: until then the rows done may pass it. Progress
-- then stops at 100% and the ETA at the wait alone, instead of reading 100.4% and counting below
-- zero. The view is 010's otherwise.
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
       round(100.0 * (j.processed_records + j.failed_records)
             / nullif(greatest(j.total_records, j.processed_records + j.failed_records), 0), 1) AS percent_done,
       rate.rows_per_second,
       CASE WHEN j.status = 'running' AND rate.rows_per_second > 0
            THEN ceil(greatest(extract(epoch FROM wait.due_at - now()), 0)
                      + greatest(j.total_records - j.processed_records - j.failed_records, 0) / rate.rows_per_second)::int
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
