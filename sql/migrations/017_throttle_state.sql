-- Throttling: while the database's health is over a limit, a worker's chunks of a run finish
-- what they have in flight and wait, holding their chunks. What they wait on is recorded here
-- (src/runs/throttle-state.ts) for status, the dashboard and the autoscaler.

-- The throttle each worker of a run waits on now: one row per worker, refreshed every few
-- seconds while it waits (the figure and seen_at), removed when it resumes. `since` is when the
-- run's throttle began: a worker joining a run already throttled takes the run's.
CREATE TABLE batch_throttles (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  worker TEXT NOT NULL,
  signal VARCHAR(20) NOT NULL CHECK (signal IN ('replica_lag', 'vacuum', 'wal_rate', 'lock_wait', 'condition')),
  figure DOUBLE PRECISION NOT NULL,
  threshold DOUBLE PRECISION NOT NULL,
  unit VARCHAR(20) NOT NULL,
  detail TEXT,
  since TIMESTAMPTZ NOT NULL,
  seen_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (run_id, worker)
);

-- Runs throttled now, one row each: the newest reading of its workers, since when, and how many
-- wait. A throttle not refreshed for 30 seconds is over: a worker that died while it waited does
-- not leave its run throttled. Its row goes at the run's next transition (recordThrottle).
CREATE VIEW batch_throttled_runs AS
SELECT DISTINCT ON (run_id)
       run_id, signal, figure, threshold, unit, detail,
       min(since) OVER by_run AS since, seen_at, count(*) OVER by_run AS workers
  FROM batch_throttles
 WHERE seen_at > now() - interval '30 seconds'
WINDOW by_run AS (PARTITION BY run_id)
 ORDER BY run_id, seen_at DESC;

-- The backlog of 011, throttle-aware: while a run is throttled, a pod started now could only
-- wait, and a pod that holds a chunk waits with it. So the run counts the work of the chunks a
-- worker holds (their job is locked), no more: KEDA neither adds pods for the rest nor scales
-- away those that hold its work. When the throttle clears (or lapses), the count is 009's again.
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
       count(*) FILTER (WHERE r.status = 'running')::int AS runs
  FROM runs r
 GROUP BY r.job;
