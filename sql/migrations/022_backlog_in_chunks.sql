-- The autoscaler's unit: the chunks (and workflow steps) a pod could take up, as well as the
-- rows. A pod takes WORKERS chunks at a time whatever their size, so a trigger on rows starts
-- too many pods for a run of large chunks (one chunk of 1,000,000 rows read as 25 pods' worth)
-- and too few for small ones; on chunks_left the ScaledJob's target is WORKERS, for every job.
-- rows_left stays for people: it says how much is left.

-- Only the open chunks of the current round: with this index the backlog reads as many
-- batch_chunks entries as there are open chunks, not the whole round's (done chunks and
-- earlier rounds stay in the table as history). Building it takes a SHARE lock on batch_chunks
-- for as long as the build: workers' chunk updates wait that long, once.
CREATE INDEX batch_chunks_open ON batch_chunks (run_id, round) WHERE status IN ('queued', 'running');

-- 017's view with chunks_left appended (CREATE OR REPLACE VIEW may only add columns at the end).
CREATE OR REPLACE VIEW batch_backlog_by_job AS
WITH runs AS (
  SELECT id, job, status, round,
         EXISTS (SELECT 1 FROM batch_throttled_runs t WHERE t.run_id = batch_jobs.id) AS throttled
    FROM batch_jobs
   WHERE kind = 'process' AND status IN ('pending', 'running', 'cancelling')
),
chunk_work AS (
  SELECT r.job,
         CASE WHEN r.status = 'running' THEN greatest(c.planned_rows - c.rows_completed - c.rows_failed, 1) ELSE 1 END
           AS rows
    FROM runs r
    JOIN batch_chunks c ON c.run_id = r.id AND c.round = r.round AND c.status IN ('queued', 'running')
    LEFT JOIN graphile_worker.jobs j ON j.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
   WHERE (j.id IS NULL OR j.locked_at IS NOT NULL OR j.run_at <= now() OR j.attempts >= j.max_attempts)
     AND (NOT r.throttled OR j.locked_at IS NOT NULL)
),
step_work AS (
  SELECT r.job, 1 AS rows
    FROM runs r
   CROSS JOIN LATERAL (VALUES ('plan', 0, format('batch:%s:plan', r.id)),
                              ('finish', r.round, format('batch:%s:%s:finish', r.id, r.round))) AS step (name, round, key)
    JOIN graphile_worker.jobs j ON j.key = step.key
   WHERE (j.locked_at IS NOT NULL OR (j.run_at <= now() AND j.attempts < j.max_attempts))
     -- a step that has run has nothing left to do: its job replays the recorded result
     AND NOT EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = step.name AND s.round = step.round)
)
SELECT r.job,
       ((SELECT coalesce(sum(rows), 0) FROM chunk_work w WHERE w.job = r.job)
        + (SELECT count(*) FROM step_work w WHERE w.job = r.job))::bigint AS rows_left,
       count(*) FILTER (WHERE r.status = 'running')::int AS runs,
       ((SELECT count(*) FROM chunk_work w WHERE w.job = r.job)
        + (SELECT count(*) FROM step_work w WHERE w.job = r.job))::bigint AS chunks_left
  FROM runs r
 GROUP BY r.job;

CREATE OR REPLACE VIEW batch_backlog AS
SELECT coalesce(sum(rows_left), 0)::bigint AS rows_left, coalesce(sum(runs), 0)::int AS runs,
       coalesce(sum(chunks_left), 0)::bigint AS chunks_left
  FROM batch_backlog_by_job;
