-- The work left, in rows, of the runs that are running: pending rows plus failed rows with
-- attempts left, never rows failed for good. It reads the runs' counters, which every slice
-- commits together with its rows, so its cost does not grow with users: the autoscaler can ask
-- every few seconds whatever the table size. Paused and ended runs count nothing.
CREATE VIEW batch_backlog AS
SELECT coalesce(sum(total_records - processed_records - failed_records), 0)::bigint AS rows_left,
       count(*)::int AS runs
  FROM batch_jobs
 WHERE kind = 'process' AND status = 'running';
