import { type ClientBase, DatabaseError } from "pg";
import type { FilterValue, JobDefinition } from "./define";
import { jobSql, quoteIdentifier } from "./job-sql";

/**
 * The `where` values' part of the catalog check (src/jobs/catalog-check.ts): PostgreSQL judges
 * whether each value fits its column, by the very comparison the job's statements make, before
 * a run's plan fails on it. PostgreSQL 15 has no pg_input_is_valid: the comparison is run on no
 * row (LIMIT 0), and a value its column's type cannot read fails it.
 */

/** SQLSTATE class 22, data exception: a value the column's type cannot read (22P02, 22003...). */
const DATA_EXCEPTION = /^22/;

/**
 * The database's error comparing `column` with `values` as the job's statements do; undefined
 * when none. Under a savepoint: the check's transaction goes on after a value is refused.
 */
async function comparisonError(
  client: ClientBase,
  job: JobDefinition,
  column: string,
  values: FilterValue[],
): Promise<DatabaseError | undefined> {
  const sql = `SELECT FROM ${jobSql(job).table} t WHERE t.${quoteIdentifier(column)} = ANY($1) LIMIT 0`;
  await client.query("SAVEPOINT where_value");
  try {
    await client.query(sql, [values]);
    await client.query("RELEASE SAVEPOINT where_value");
    return undefined;
  } catch (error) {
    if (!(error instanceof DatabaseError)) throw error;
    await client.query("ROLLBACK TO SAVEPOINT where_value");
    return error;
  }
}

/**
 * The `where` values that do not fit their columns, one line each; a missing column is the
 * caller's to report. A boolean only fits a boolean column: elsewhere it would be compared as
 * the word "true". Run in the check's transaction.
 */
export async function whereValueProblems(
  client: ClientBase,
  job: JobDefinition,
  columns: ReadonlyMap<string, { type: string }>,
): Promise<string[]> {
  const where = `${job.schema}.${job.table}`;
  const problems: string[] = [];
  for (const { column, values } of job.where) {
    const type = columns.get(column)?.type;
    if (!type) continue;
    const refuse = (value: FilterValue, why: string) =>
      problems.push(`job ${job.name}: where value ${JSON.stringify(value)} for ${where}.${column} (${type}): ${why}`);
    const misplaced = (value: FilterValue) => typeof value === "boolean" && type !== "bool";
    for (const value of values.filter(misplaced)) refuse(value, "a boolean compares only with a boolean column");
    const judged = values.filter((value) => !misplaced(value));
    const error = judged.length > 0 ? await comparisonError(client, job, column, judged) : undefined;
    if (!error) continue;
    if (!DATA_EXCEPTION.test(error.code ?? "")) {
      problems.push(`job ${job.name}: where on ${where}.${column} (${type}) fails: ${error.message}`);
      continue;
    }
    // the comparison names one value at most: each is tried alone to name every one
    for (const value of judged) {
      const refused = await comparisonError(client, job, column, [value]);
      if (refused) refuse(value, refused.message);
    }
  }
  return problems;
}
