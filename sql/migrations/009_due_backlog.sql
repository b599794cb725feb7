-- The autoscaler's trigger counts the work a worker started now could take up, no more, no less:
--
-- * the rows left in each chunk of a running run's current round whose job is due, locked (a
--   live worker is on it, or a dead one holds it until a worker's recovery releases it), missing
--   or out of attempts (a worker's recovery gives those their ending): at least 1 per chunk, so
--   the count does not reach 0 between a round's last slice and the fan-in that follows it;
-- * 1 for each step of the workflow (plan, finish) not yet run whose job is due or running;
-- * 1 for each chunk of a cancelling run still to be settled.
--
-- Nothing counts while a retry round waits for its delay or a chunk's job backs off after a
-- failure: no pod would find a job to take. It reads the runs, their chunks and the jobs of those
-- chunks by key (graphile_worker.jobs is its public view), never users: its cost follows the
-- number of chunks, not of rows.
CREATE OR REPLACE VIEW batch_backlog AS
WITH runs AS (
  SELECT id, status, round
    FROM batch_jobs
   WHERE kind = 'process' AND status IN ('pending', 'running', 'cancelling')
),
chunk_work AS (
  SELECT CASE WHEN r.status = 'running' THEN greatest(c.planned_rows - c.rows_completed - c.rows_failed, 1) ELSE 1 END
           AS rows
    FROM runs r
    JOIN batch_chunks c ON c.run_id = r.id AND c.round = r.round AND c.status IN ('queued', 'running')
    LEFT JOIN graphile_worker.jobs j ON j.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
   WHERE j.id IS NULL OR j.locked_at IS NOT NULL OR j.run_at <= now() OR j.attempts >= j.max_attempts
),
step_work AS (
  SELECT 1 AS rows
    FROM runs r
   CROSS JOIN LATERAL (VALUES ('plan', 0, format('batch:%s:plan', r.id)),
                              ('finish', r.round, format('batch:%s:%s:finish', r.id, r.round))) AS step (name, round, key)
    JOIN graphile_worker.jobs j ON j.key = step.key
   WHERE (j.locked_at IS NOT NULL OR (j.run_at <= now() AND j.attempts < j.max_attempts))
     -- a step that has run has nothing left to do: its job replays the recorded result
     AND NOT EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = step.name AND s.round = step.round)
)
SELECT ((SELECT coalesce(sum(rows), 0) FROM chunk_work) + (SELECT count(*) FROM step_work))::bigint AS rows_left,
       (SELECT count(*) FROM runs WHERE status = 'running')::int AS runs;

-- A row belongs to at most one active run: every run works through the same table's pending and
-- retryable rows, so a second active run would count them again and race for them. Starting a
-- run while another is active is refused (src/runs/store.ts insertRun says which one).
DO $$
BEGIN
  IF (SELECT count(*) FROM batch_jobs
       WHERE kind = 'process' AND status IN ('pending', 'running', 'paused', 'cancelling')) > 1 THEN
    RAISE EXCEPTION 'more than one batch run is active; let all but one end (or cancel them), then apply the schema again';
  END IF;
END $$;
CREATE UNIQUE INDEX batch_jobs_one_active_run ON batch_jobs (kind)
  WHERE kind = 'process' AND status IN ('pending', 'running', 'paused', 'cancelling');
