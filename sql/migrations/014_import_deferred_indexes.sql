-- Indexes of users that `seed import` dropped to load an empty table faster (a unique index
-- costs a random btree insert per row once it outgrows memory; built after the load, it is one
-- sort). Recorded in the transaction that drops the index, so that an import interrupted after
-- the drop still builds it at its end: the next import finds the row and finishes the work.
CREATE TABLE import_deferred_indexes (
  index_name TEXT PRIMARY KEY,
  -- pg_get_indexdef: the CREATE INDEX statement that builds it again
  definition TEXT NOT NULL,
  -- the UNIQUE constraint the index backed, added again on the built index
  constraint_name TEXT,
  deferred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
