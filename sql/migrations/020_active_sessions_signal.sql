-- The throttle signal active_sessions (src/health/signals.ts): others' client sessions running a
-- statement, over the limit THROTTLE_MAX_ACTIVE_SESSIONS or a job's maxActiveSessions. Replaces
-- the check of batch_throttles.signal. batch_throttles holds a row per waiting worker at most,
-- so the new check's validation reads a few rows; the ACCESS EXCLUSIVE lock it takes lasts as
-- long, and a worker recording its throttle meanwhile waits that long.
ALTER TABLE batch_throttles
  DROP CONSTRAINT batch_throttles_signal_check,
  ADD CONSTRAINT batch_throttles_signal_check
    CHECK (signal IN ('replica_lag', 'vacuum', 'wal_rate', 'lock_wait', 'active_sessions', 'condition'));
