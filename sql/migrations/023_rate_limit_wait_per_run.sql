-- The time a run's chunks waited for tokens of its job's rate limit, summed over chunks: each
-- slice adds its own wait, before its claim, with its counters (COUNT_OUTCOMES in
-- src/chunks/slice.ts), and a chunk adds what no slice of its counted as it ends. status and the
-- run's history show it. A column with a constant default: adding it rewrites nothing, and the
-- ACCESS EXCLUSIVE lock on batch_jobs lasts only as long as the catalog change.
ALTER TABLE batch_jobs ADD COLUMN rate_limit_waited_seconds FLOAT8 NOT NULL DEFAULT 0;
