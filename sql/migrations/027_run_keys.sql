-- The keys a run over a file of keys takes (seed enqueue --keys FILE): the plan and every claim
-- of the run restrict its rows to these, through the primary key (an index probe per row, or a
-- merge of both indexes in key order). BIGINT holds every key a job may have: keys are integers
-- whatever the job's keyType, as chunks and outcomes are. Gone with the run.
CREATE TABLE batch_run_keys (
  run_id INTEGER NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
  key BIGINT NOT NULL,
  PRIMARY KEY (run_id, key)
);
