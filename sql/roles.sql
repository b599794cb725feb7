-- Roles of a pg-batch deployment, least privilege first. Run after sql/schema-owner.sql and the
-- migrations, as a user allowed to create roles the first time (`npm run seed -- schema --roles`
-- runs all three, or psql -f each), then by the migration of each release; safe to run again.
--
-- They are group roles (NOLOGIN): give your login users membership, e.g.
--   CREATE ROLE worker_pods LOGIN PASSWORD '...' IN ROLE batch_worker;
--
--   batch_admin    owns the schema (sql/schema-owner.sql): runs migrations, seeds, starts
--                  and steers runs, reads everything
--   batch_worker   what worker processes do: claim and write outcomes, run the queue
--   batch_monitor  what the KEDA trigger reads: the backlog view, nothing else
--   batch_viewer   what `status` and the dashboard read: runs, chunks, errors, samples,
--                  history, workers; no row of a job's table, and no write

DO $$
DECLARE
  role_name TEXT;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['batch_worker', 'batch_monitor', 'batch_viewer'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created meanwhile by a concurrent run
      END;
    END IF;
  END LOOP;
END $$;

-- batch_admin: the tools' role.
GRANT USAGE, CREATE ON SCHEMA public, graphile_worker TO batch_admin;
GRANT ALL ON ALL TABLES IN SCHEMA public, graphile_worker TO batch_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public, graphile_worker TO batch_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA graphile_worker TO batch_admin;

-- every role: the migrations applied, which programs check at their start (src/db/schema-version.ts),
-- and the schema's version, which the programs of earlier releases check
GRANT EXECUTE ON FUNCTION batch_applied_migrations(), batch_schema_version()
  TO batch_admin, batch_worker, batch_monitor, batch_viewer;

-- batch_worker: on each job's table (users, and those of jobs/), reads the columns its job
-- reads and writes only its state and result columns: granted from the job's definition by
-- `npm run seed -- roles` after this file (src/jobs/grants.ts).
GRANT USAGE ON SCHEMA public, graphile_worker TO batch_worker;
GRANT SELECT, UPDATE ON batch_jobs TO batch_worker;
GRANT SELECT, INSERT, UPDATE ON batch_chunks, batch_errors TO batch_worker;
GRANT SELECT, INSERT ON batch_steps, batch_samples TO batch_worker;
-- a run over a file's keys claims only those (src/jobs/job-sql.ts)
GRANT SELECT ON batch_run_keys TO batch_worker;
GRANT INSERT ON batch_events TO batch_worker;
GRANT USAGE ON SEQUENCE batch_events_id_seq TO batch_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON worker_sessions TO batch_worker;
-- what its chunks wait on while the database's health is over a limit (src/runs/throttle-state.ts)
GRANT SELECT, INSERT, UPDATE, DELETE ON batch_throttles TO batch_worker;
GRANT SELECT ON batch_throttled_runs TO batch_worker;
-- scheduled runs: each worker writes its jobs' schedules and decides their ticks, `seed schema` forgets those its jobs dropped (workflows/schedule-tick.ts)
GRANT SELECT, INSERT, UPDATE, DELETE ON batch_schedules, batch_schedule_ticks TO batch_worker;
-- to tell, at start, a key whose unique index an interrupted import has yet to build (src/jobs/catalog-check.ts)
GRANT SELECT ON import_deferred_indexes TO batch_worker;
-- a job's rate limit: tokens only through the function, which alone writes the buckets
GRANT EXECUTE ON FUNCTION batch_take_tokens(TEXT, INTEGER, FLOAT8, FLOAT8, FLOAT8) TO batch_admin, batch_worker;
-- the queue: graphile-worker's tables and functions, without the right to change its schema
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA graphile_worker TO batch_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA graphile_worker TO batch_worker;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA graphile_worker TO batch_worker;

-- graphile-worker's tables have row-level security on and no policy: only their owner sees a
-- row. Let the admin and worker roles at every row of them (again after a graphile-worker
-- upgrade, whose migrations may recreate tables).
DO $$
DECLARE
  queue_table REGCLASS;
BEGIN
  FOR queue_table IN
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'graphile_worker' AND c.relkind = 'r' AND c.relrowsecurity
  LOOP
    IF NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = queue_table AND polname = 'batch_roles') THEN
      EXECUTE format('CREATE POLICY batch_roles ON %s TO batch_admin, batch_worker USING (true) WITH CHECK (true)',
                     queue_table);
    END IF;
  END LOOP;
END $$;

-- batch_monitor: the autoscaler's query, SELECT chunks_left FROM batch_backlog.
GRANT USAGE ON SCHEMA public TO batch_monitor;
GRANT SELECT ON batch_backlog, batch_backlog_by_job TO batch_monitor;

-- The KEDA logins (members of batch_monitor) give up rather than wait: a migration holding a lock
-- on the backlog's tables would otherwise hold the trigger's query, and every scaling decision,
-- until it commits. The query then fails, and KEDA reports a scaler error, until the lock is gone.
-- Role settings are not inherited through membership: each login gets them, in this database
-- (ALTER ROLE takes no lock on any table). A login made later gets them when this runs again as
-- a user allowed to alter roles (docs/kubernetes.md, "Roles and secrets"); where this user may not, it says so.
DO $$
DECLARE
  login TEXT;
BEGIN
  FOR login IN
    SELECT member.rolname FROM pg_roles member
    WHERE member.rolcanlogin AND pg_has_role(member.oid, 'batch_monitor', 'MEMBER')
      AND NOT member.rolsuper
  LOOP
    BEGIN
      EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', login, current_database(), '5s');
      EXECUTE format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L', login, current_database(), '1s');
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'timeouts not set for the KEDA login %: set them as a user allowed to alter roles', login;
    END;
  END LOOP;
END $$;

-- batch_viewer: `npm run status` and the dashboard's MONITOR_DATABASE_URL (src/status/,
-- src/dashboard/). The views read graphile-worker's jobs with their owner's rights.
GRANT USAGE ON SCHEMA public, graphile_worker TO batch_viewer;
GRANT SELECT ON graphile_worker.jobs TO batch_viewer;
GRANT SELECT ON batch_jobs, batch_chunks, batch_errors, batch_samples, batch_events, batch_steps, worker_sessions,
  batch_rate_limits, batch_progress, batch_workers, batch_backlog, batch_backlog_by_job, batch_throttles,
  batch_throttled_runs, batch_schedules, batch_schedule_ticks TO batch_viewer;

-- batch_worker: the database's health, read before claiming (src/health/signals.ts). Which tables
-- a vacuum (autovacuum's included) is working on and how far the standbys have replayed are
-- shown to pg_read_all_stats alone: statistics, no row of any table. Where the role running this
-- may not grant it, the workers go without those two signals, and this says so.
DO $$
BEGIN
  GRANT pg_read_all_stats TO batch_worker;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'pg_read_all_stats not granted to batch_worker: its workers do not see vacuums or standbys';
END $$;
