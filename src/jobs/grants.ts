import type { ClientBase } from "pg";
import type { JobDefinition } from "./define";
import { quoteIdentifier } from "./job-sql";

/**
 * Lets the worker role (batch_worker, sql/roles.sql) at a job's table: read its key, the
 * columns the job reads and its state; write its state, results and touched columns. Nothing
 * else of a table the user owns.
 */
export async function grantWorkerAccess(client: ClientBase, job: JobDefinition): Promise<void> {
  const q = quoteIdentifier;
  const table = `${q(job.schema)}.${q(job.table)}`;
  const state = Object.values(job.state);
  const results = job.writes.map((c) => c.column);
  const written = new Set([...state, ...results, ...job.touch]);
  // the claim reads the state; an outcome's UPDATE reads what it keeps (a failed row's results);
  // the last error is only ever written
  const read = new Set([
    job.key,
    ...job.reads.map((c) => c.column),
    ...job.where.map((w) => w.column),
    ...state.filter((column) => column !== job.state.error),
    ...results,
  ]);
  await client.query(`GRANT USAGE ON SCHEMA ${q(job.schema)} TO batch_worker`);
  await client.query(`GRANT SELECT (${[...read].map(q).join(", ")}) ON ${table} TO batch_worker`);
  await client.query(`GRANT UPDATE (${[...written].map(q).join(", ")}) ON ${table} TO batch_worker`);
}
