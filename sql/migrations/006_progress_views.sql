-- Progress of batch runs in plain SQL, for users who only have psql. Every view reads the runs'
-- counters, chunks and samples, never users: they cost the same at any table size. None reads
-- graphile-worker's tables, whose migrations must stay free to replace them.

-- One row per batch run: counts, percent done, current rate (rows per second over the last
-- minute while it runs, its average once ended) and the ETA of the work left.
CREATE VIEW batch_progress AS
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
            THEN ceil((j.total_records - j.processed_records - j.failed_records) / rate.rows_per_second)::int
       END AS eta_seconds,
       j.started_at,
       j.completed_at
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
 WHERE j.kind = 'process';

-- Workers by run: chunks running now, rows they have processed, when they last wrote.
CREATE VIEW batch_workers AS
SELECT run_id,
       worker,
       count(*) FILTER (WHERE status = 'running')::int AS running_chunks,
       sum(rows_completed + rows_failed)::bigint AS rows,
       max(updated_at) AS last_seen
  FROM batch_chunks
 WHERE worker IS NOT NULL
 GROUP BY run_id, worker;
