-- A take from a job's rate-limit bucket is granted whole or not at all: `want` tokens (at most the
-- burst) once the bucket holds that many, else none, and the taker asks again once the bucket
-- has had time to refill (src/processing/rate-limit.ts). Granting what little is there instead
-- split the refill between the processes taking from it into grants of a few tokens each, so
-- their slices claimed a few rows each; under load their transactions' cost then held the run
-- below its limit. Tokens left in the bucket are not lost: they wait there for the next take.
-- A take of fewer than none (`want` < 0) gives tokens a process took and did not use back, up
-- to the burst, and returns 0: they are the cluster's again, not dropped.
-- Locks: as before, the bucket's row, FOR UPDATE, for this one statement; concurrent takes of
-- the job queue on it and each sees the last one's tokens, so the tokens granted over any span
-- never exceed burst + per_second * its length. The same signature: its grants stay.
CREATE OR REPLACE FUNCTION batch_take_tokens(job_name TEXT, want INTEGER, per_second FLOAT8, burst FLOAT8,
                                             waited_seconds FLOAT8 DEFAULT 0)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  held FLOAT8;
  last_refill TIMESTAMPTZ;
  taken_at TIMESTAMPTZ;
  available FLOAT8;
  whole INTEGER;
  granted INTEGER;
BEGIN
  IF NOT per_second > 0 OR NOT burst >= 1 THEN
    RAISE EXCEPTION 'batch_take_tokens: per_second must be > 0 and burst >= 1 (got %, %)', per_second, burst;
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
  -- more than the burst is never held: such a take gets the burst
  whole := least(want, floor(burst))::INTEGER;
  granted := CASE WHEN want < 0 OR available < whole THEN 0 ELSE whole END;
  UPDATE batch_rate_limits r
     SET tokens = least(batch_take_tokens.burst, available - granted - least(want, 0)), refilled_at = taken_at,
         per_second = batch_take_tokens.per_second, burst = batch_take_tokens.burst,
         granted_total = r.granted_total + granted,
         waited_seconds_total = r.waited_seconds_total + greatest(waited_seconds, 0)
   WHERE r.job = job_name;
  RETURN granted;
END
$$;
