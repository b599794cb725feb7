-- Worker processes running batch jobs, and how to tell that one is alive: for as long as the
-- process lives, a session of its own holds the advisory lock `lock_key`, and it sets
-- `last_seen` every few seconds. A worker is dead when both fail (src/worker/recovery.ts).
CREATE TABLE worker_sessions (
  -- graphile-worker's pool id: the locked_by of the jobs the process runs
  pool_id TEXT PRIMARY KEY,
  pod TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  lock_key BIGINT NOT NULL UNIQUE CHECK (lock_key > 0),
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_seen TIMESTAMPTZ NOT NULL DEFAULT now()
);
