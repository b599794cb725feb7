-- A chunk planned past a run's canary (RunSettings.canary) waits as 'deferred': it has no queue
-- job, counts in no backlog or waiting work (every view takes 'queued' and 'running' only), and
-- becomes 'queued' when the run is resumed after its canary (workflows/batch-control.ts).
ALTER TABLE batch_chunks DROP CONSTRAINT batch_chunks_status_check;
ALTER TABLE batch_chunks ADD CONSTRAINT batch_chunks_status_check
  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'deferred'));
