import type { JobDefinition } from "./define";
import { quoteIdentifier } from "./job-sql";

/**
 * The migration that gives a job's table the columns the job needs and the table lacks: the
 * processing state (one set per job) and the result columns. Adding a column with a constant
 * default rewrites nothing, at any table size. `npm run jobs -- migration NAME` writes it into
 * sql/migrations/, to be reviewed and applied with the others (`npm run seed -- schema`).
 */

const SQL_TYPES: Record<string, string> = {
  text: "TEXT",
  integer: "INTEGER",
  bigint: "BIGINT",
  double: "DOUBLE PRECISION",
  numeric: "NUMERIC",
  boolean: "BOOLEAN",
  timestamp: "TIMESTAMP",
  timestamptz: "TIMESTAMPTZ",
  date: "DATE",
  jsonb: "JSONB",
};

export function stateMigrationSql(job: JobDefinition): string {
  const q = quoteIdentifier;
  const table = `${q(job.schema)}.${q(job.table)}`;
  const { state } = job;
  const columns = [
    `${q(state.status)} VARCHAR(20) NOT NULL DEFAULT 'pending'`,
    `${q(state.attempts)} INTEGER NOT NULL DEFAULT 0`,
    `${q(state.error)} TEXT`,
    `${q(state.runId)} INTEGER`,
    `${q(state.processedAt)} TIMESTAMPTZ`,
    ...job.writes.map(({ column, spec }) => `${q(column)} ${SQL_TYPES[spec.kind] ?? "TEXT"}`),
  ];
  const constraint = q(`${job.table}_${state.status}_check`.slice(0, 63));
  return `-- The processing state of job ${job.name} (jobs/) in its table ${job.schema}.${job.table}, and its
-- result columns where the table lacks them: written by \`npm run jobs -- migration ${job.name}\`.
-- Processing writes each row once; keep these columns out of every index, so that the write
-- is a HOT update (no index entry, no uniqueness check). A table that is mostly processed, not
-- inserted into, gains from a lower fillfactor: ALTER TABLE ${table} SET (fillfactor = 70).
ALTER TABLE ${table}
  ${columns.map((column) => `ADD COLUMN IF NOT EXISTS ${column}`).join(",\n  ")};

ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS ${constraint};
ALTER TABLE ${table} ADD CONSTRAINT ${constraint}
  CHECK (${q(state.status)} IN ('pending', 'completed', 'failed')) NOT VALID;
`;
}
