-- Several jobs per deployment, one file each under jobs/ (src/jobs/define.ts): every run is a
-- run of one job, named here. Rows of other tables than users keep their processing state in
-- columns of their own table, added by the migration `npm run jobs -- migration NAME` writes.
ALTER TABLE batch_jobs ADD COLUMN job VARCHAR(40);
UPDATE batch_jobs SET job = 'users' WHERE kind = 'process';
ALTER TABLE batch_jobs ADD CONSTRAINT batch_jobs_job_check CHECK ((kind = 'process') = (job IS NOT NULL));

-- CLAIM_SIZE is called what it is, the chunk size, in the settings a run keeps too.
UPDATE batch_jobs SET config = (config - 'claimSize') || jsonb_build_object('chunkSize', config -> 'claimSize')
 WHERE config ? 'claimSize';

-- A row belongs to at most one active run of its job: a second would count the job's rows again
-- and race for them. Runs of different jobs work through different tables, or different state
-- columns of one (the catalog refuses two jobs sharing state columns), side by side.
DROP INDEX batch_jobs_one_active_run;
CREATE UNIQUE INDEX batch_jobs_one_active_run ON batch_jobs (job)
  WHERE kind = 'process' AND status IN ('pending', 'running', 'paused', 'cancelling');

-- The backlog of 009, by job: what a worker started now could take up of each job's runs. A
-- worker runs every job of its image, so KEDA reads the sum (batch_backlog); the rows of one job
-- are for dashboards and alerts, or for a ScaledJob of its own where a deployment gives one job
-- workers of their own.
CREATE VIEW batch_backlog_by_job AS
WITH runs AS (
  SELECT id, job, status, round
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
   WHERE j.id IS NULL OR j.locked_at IS NOT NULL OR j.run_at <= now() OR j.attempts >= j.max_attempts
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

CREATE OR REPLACE VIEW batch_backlog AS
SELECT coalesce(sum(rows_left), 0)::bigint AS rows_left, coalesce(sum(runs), 0)::int AS runs
  FROM batch_backlog_by_job;
