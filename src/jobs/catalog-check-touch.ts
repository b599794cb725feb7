import type { JobDefinition } from "./define";

/**
 * The touch columns' part of the catalog check (src/jobs/catalog-check.ts): each outcome sets
 * them to now(), so each must hold a time and be no column the job uses otherwise (a column it
 * reads would be overwritten under it; one it writes would be set twice in one UPDATE).
 */

const TOUCH_TYPES = ["timestamptz", "timestamp"];

/** What the job uses each of its columns for, by column. */
function usesOfColumns(job: JobDefinition): Map<string, string> {
  return new Map([
    ...Object.values(job.state).map((column): [string, string] => [column, "a state column"]),
    ...job.writes.map(({ column, property }): [string, string] => [column, `written from ${property}`]),
    ...job.reads.map(({ column, property }): [string, string] => [column, `read as ${property}`]),
    [job.key, "its key"],
  ]);
}

/**
 * The touch columns that do not fit, one line each (a missing one is the caller's to report);
 * `columns` are the table's, by name, with their pg_type (domains as their base type).
 */
export function touchColumnProblems(job: JobDefinition, columns: ReadonlyMap<string, { type: string }>): string[] {
  const where = `${job.schema}.${job.table}`;
  const uses = usesOfColumns(job);
  const problems: string[] = [];
  for (const [index, column] of job.touch.entries()) {
    const use = uses.get(column);
    const type = columns.get(column)?.type;
    if (job.touch.indexOf(column) < index) {
      problems.push(`job ${job.name}: touch column ${where}.${column} is listed twice`);
    } else if (use) {
      problems.push(
        `job ${job.name}: touch column ${where}.${column} is ${use}: touch sets it to now() with every outcome`,
      );
    } else if (type && !TOUCH_TYPES.includes(type)) {
      problems.push(`job ${job.name}: touch column ${where}.${column} is ${type}, not ${TOUCH_TYPES.join(" or ")}`);
    }
  }
  return problems;
}
