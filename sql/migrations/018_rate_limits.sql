-- A job's rate limit (`rateLimit` in its definition, RATE_LIMIT_PER_S), held across every worker
-- of every pod: one token bucket per job, in the database they all share. Each worker process
-- takes tokens a tenth of a second's worth at a time (src/processing/rate-limit.ts) and hands
-- them to its records, so the bucket sees some ten to twenty statements a second per process.
CREATE TABLE batch_rate_limits (
  job TEXT PRIMARY KEY,
  -- what the bucket held at refilled_at; it gains per_second a second, up to burst
  tokens FLOAT8 NOT NULL,
  refilled_at TIMESTAMPTZ NOT NULL,
  -- the limit of the last take (every worker of a deployment is meant to run with the same)
  per_second FLOAT8 NOT NULL,
  burst FLOAT8 NOT NULL,
  -- for status and the dashboard: tokens granted, and the time records spent waiting for them
  granted_total BIGINT NOT NULL DEFAULT 0,
  waited_seconds_total FLOAT8 NOT NULL DEFAULT 0
);

-- Refills the job's bucket by the time since its last take (by the database's clock, one for
-- every worker) and grants up to `want` whole tokens of it; returns how many it granted. A new
-- bucket starts full. `waited_seconds`: the time records of the caller waited since its last
-- take, added to the total.
-- Locks: the bucket's row, FOR UPDATE, for this one statement (callers run it outside any
-- transaction of theirs); concurrent takes of the job queue on it and each sees the last one's
-- tokens, so the tokens granted over any span never exceed burst + per_second * its length.
-- SECURITY DEFINER: the worker role executes it and has no right on the table itself.
CREATE FUNCTION batch_take_tokens(job_name TEXT, want INTEGER, per_second FLOAT8, burst FLOAT8,
                                  waited_seconds FLOAT8 DEFAULT 0)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  held FLOAT8;
  last_refill TIMESTAMPTZ;
  taken_at TIMESTAMPTZ;
  available FLOAT8;
  granted INTEGER;
BEGIN
  IF want < 0 OR NOT per_second > 0 OR NOT burst >= 1 THEN
    RAISE EXCEPTION 'batch_take_tokens: want must be >= 0, per_second > 0 and burst >= 1 (got %, %, %)',
      want, per_second, burst;
  END IF;
  SELECT r.tokens, r.refilled_at INTO held, last_refill FROM batch_rate_limits r WHERE r.job = job_name FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO batch_rate_limits AS r (job, tokens, refilled_at, per_second, burst)
    VALUES (job_name, burst, clock_timestamp(), per_second, burst)
    ON CONFLICT (job) DO NOTHING;
    SELECT r.tokens, r.refilled_at INTO held, last_refill FROM batch_rate_limits r WHERE r.job = job_name FOR UPDATE;
  END IF;
  -- read once the row is locked: the take before this one has committed its refill
  taken_at := clock_timestamp();
  available := least(burst, held + greatest(extract(epoch FROM taken_at - last_refill), 0) * per_second);
  granted := greatest(least(want, floor(available)), 0)::INTEGER;
  UPDATE batch_rate_limits r
     SET tokens = available - granted, refilled_at = taken_at,
         per_second = batch_take_tokens.per_second, burst = batch_take_tokens.burst,
         granted_total = r.granted_total + granted,
         waited_seconds_total = r.waited_seconds_total + greatest(waited_seconds, 0)
   WHERE r.job = job_name;
  RETURN granted;
END
$$;

REVOKE EXECUTE ON FUNCTION batch_take_tokens(TEXT, INTEGER, FLOAT8, FLOAT8, FLOAT8) FROM PUBLIC;
