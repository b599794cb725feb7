-- Scheduled runs (workflows/schedule-tick.ts): a job may declare a cron schedule; each tick
-- starts one run, named from the job and the tick, however many workers are up.

-- One row per scheduled job, written by each worker at its start from its jobs' definitions
-- (the schedule's fields) and by `batch schedule pause|resume` (paused). A tick's queue job
-- locks the row (FOR UPDATE) while it decides and records the tick: ticks of one job are decided
-- one at a time, each once. last_tick is the latest tick decided (started, skipped or queued);
-- queued_tick the one waiting for the job's active run to end (overlap "queue", one at most).
CREATE TABLE batch_schedules (
  job TEXT PRIMARY KEY,
  cron TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  overlap VARCHAR(10) NOT NULL CHECK (overlap IN ('skip', 'queue')),
  catch_up VARCHAR(10) NOT NULL CHECK (catch_up IN ('latest', 'skip')),
  -- ticks are looked for after this, the first time
  since TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_tick TIMESTAMPTZ,
  queued_tick TIMESTAMPTZ,
  paused BOOLEAN NOT NULL DEFAULT false,
  paused_at TIMESTAMPTZ,
  paused_by TEXT,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What each tick did, once per tick (the primary key): started (run_id), skipped (why), or queued
-- behind the active run and started later (then updated to started). `missed` counts the
-- earlier ticks no worker took, folded into this one (a worker down across several ticks starts
-- at most one run).
CREATE TABLE batch_schedule_ticks (
  job TEXT NOT NULL REFERENCES batch_schedules (job) ON DELETE CASCADE,
  tick TIMESTAMPTZ NOT NULL,
  outcome VARCHAR(20) NOT NULL
    CHECK (outcome IN ('started', 'queued', 'skipped-overlap', 'skipped-missed', 'skipped-paused', 'skipped-nothing')),
  run_id INTEGER REFERENCES batch_jobs (id) ON DELETE SET NULL,
  missed INTEGER NOT NULL DEFAULT 0,
  decided_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  decided_by TEXT NOT NULL,
  PRIMARY KEY (job, tick)
);

-- The autoscaler's backlog counts a tick that is due (or being decided) as a step: with no pod up, KEDA starts one
-- to take it. 022's view with the due ticks added; the columns unchanged.
CREATE OR REPLACE VIEW batch_backlog AS
WITH due_ticks AS (
  SELECT count(*) AS ticks
    FROM graphile_worker.jobs j
   WHERE j.task_identifier = 'batch_schedule'
     AND (j.locked_at IS NOT NULL OR (j.run_at <= now() AND j.attempts < j.max_attempts))
)
SELECT coalesce(sum(rows_left), 0)::bigint + (SELECT ticks FROM due_ticks) AS rows_left,
       coalesce(sum(runs), 0)::int AS runs,
       coalesce(sum(chunks_left), 0)::bigint + (SELECT ticks FROM due_ticks) AS chunks_left
  FROM batch_backlog_by_job;
