import type { PoolClient } from "pg";
import type { JobDefinition } from "../jobs/define";
import { jobSql } from "../jobs/job-sql";
import { encodeResult, type ResultElement, resultName } from "../jobs/results";

/**
 * Results the database refused: a value one row's own result holds that the job's column kinds
 * cannot tell (a constraint, a trigger, a date that does not exist, a precision), found when a
 * slice's write fails (src/chunks/slice.ts), and said in the row's error.
 */

/**
 * SQLSTATE classes of an error a row's own values cause: data exceptions (22), integrity
 * constraints (23), program limits such as an index row too large (54), triggers' errors
 * (27, 38, 39, 2F, P0). Others (connection, timeouts, privileges) fail the slice as they are.
 */
const ROW_VALUE_ERROR_CLASSES = new Set(["22", "23", "27", "2F", "38", "39", "54", "P0"]);

export const isRowValueError = (error: unknown) =>
  ROW_VALUE_ERROR_CLASSES.has(String((error as { code?: unknown }).code ?? "").slice(0, 2));

/**
 * A write of outcomes failed on a value of one of its rows: the slice is rolled back, and its
 * outcomes written again apart, so that only that row fails. Its message holds no value: the
 * database's may hold every row's of the statement; `cause` is the database's error.
 */
export class RowValueError extends Error {
  override name = "RowValueError";
}

/**
 * Why the database refused the one row whose result `refusal` was raised for: the result column
 * whose value its column's own type cannot take (each tried alone, outside any transaction,
 * against the table's column type), named with the database's words; else the database's
 * words alone (a constraint or a trigger, which name themselves).
 */
export async function whyRefused(
  client: PoolClient,
  job: JobDefinition,
  result: unknown,
  refusal: Error,
): Promise<string> {
  const elements: ResultElement[] = new Array(job.writes.length);
  if (encodeResult(job.writes, result, elements) === undefined) {
    const { rows: types } = await client.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
        WHERE attrelid = to_regclass($1) AND attname = ANY($2) AND NOT attisdropped`,
      [jobSql(job).table, job.writes.map((column) => column.column)],
    );
    const typeOf = new Map(types.map((column) => [column.name, column.type]));
    for (const [index, column] of job.writes.entries()) {
      const type = typeOf.get(column.column);
      if (elements[index] === null || type === undefined) continue;
      try {
        await client.query(`SELECT $1::${type}`, [elements[index]]);
      } catch (error) {
        if (!isRowValueError(error)) throw error;
        return `${resultName(column)}: ${(error as Error).message}`;
      }
    }
  }
  return `the result could not be written: ${refusal.message}`;
}
