import type { ClientBase } from "pg";
import { CommandError } from "../base/command-error";
import { inTransaction } from "../db/pool";
import { touchColumnProblems } from "./catalog-check-touch";
import { whereValueProblems } from "./catalog-check-where";
import type { Column } from "./columns";
import type { JobDefinition } from "./define";
import { quoteIdentifier } from "./job-sql";

/**
 * Checks a job's definition against the live database's catalog: its table, key, the columns
 * it reads and writes, its state columns. Run at enqueue and at worker start, so that a job
 * that does not fit its table is refused with one line per mismatch, not by a failed slice.
 */

interface CatalogColumn {
  name: string;
  type: string;
  notNull: boolean;
}

const STATE_TYPES = {
  status: ["text", "varchar", "bpchar"],
  attempts: ["int2", "int4", "int8"],
  error: ["text", "varchar"],
  runId: ["int4", "int8"],
  processedAt: ["timestamptz", "timestamp"],
} as const;

/** The table's columns (domains as their base type), or undefined when there is no such table. */
async function tableColumns(client: ClientBase, job: JobDefinition): Promise<Map<string, CatalogColumn> | undefined> {
  const relation = `${quoteIdentifier(job.schema)}.${quoteIdentifier(job.table)}`;
  const { rows: found } = await client.query<{ exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [
    relation,
  ]);
  if (!found[0]?.exists) return undefined;
  const { rows } = await client.query<CatalogColumn>(
    `SELECT a.attname AS name, CASE WHEN t.typtype = 'd' THEN b.typname ELSE t.typname END AS type,
            a.attnotnull AS "notNull"
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type b ON b.oid = t.typbasetype
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [relation],
  );
  return new Map(rows.map((row) => [row.name, row]));
}

/** Whether `key` alone is the table's primary key or unique: chunks and outcomes find rows by it. */
async function keyIsUnique(client: ClientBase, job: JobDefinition): Promise<boolean> {
  const { rows } = await client.query<{ unique: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
          AND a.attname = $2) AS unique`,
    [`${quoteIdentifier(job.schema)}.${quoteIdentifier(job.table)}`, job.key],
  );
  return rows[0]?.unique ?? false;
}

/**
 * A key of the table a number cannot hold exactly, if any: the lowest or the highest, read from
 * the key's unique index in two probes.
 */
async function keyBeyondNumbers(client: ClientBase, job: JobDefinition): Promise<string | undefined> {
  const key = quoteIdentifier(job.key);
  const relation = `${quoteIdentifier(job.schema)}.${quoteIdentifier(job.table)}`;
  const { rows } = await client.query<{ key: string }>(
    `SELECT k::text AS key
       FROM (SELECT min(${key}) AS k FROM ${relation} UNION ALL SELECT max(${key}) FROM ${relation}) ends
      WHERE abs(k::numeric) > $1`,
    [Number.MAX_SAFE_INTEGER],
  );
  return rows[0]?.key;
}

/**
 * Whether the key's unique index is one an interrupted `seed import` dropped and has yet to build
 * (seed/deferred-index.ts): told by import_deferred_indexes, where the role may read it.
 */
async function keyBuildPending(client: ClientBase, job: JobDefinition): Promise<boolean> {
  // the import loads the users table the search path finds
  const { rows } = await client.query<{ readable: boolean | null }>(
    `SELECT to_regclass($1) = to_regclass('users')
            AND has_table_privilege(to_regclass('import_deferred_indexes'), 'SELECT') AS readable`,
    [`${quoteIdentifier(job.schema)}.${quoteIdentifier(job.table)}`],
  );
  if (!rows[0]?.readable) return false;
  const { rowCount } = await client.query("SELECT 1 FROM import_deferred_indexes WHERE key_column = $1", [job.key]);
  return (rowCount ?? 0) > 0;
}

/**
 * The mismatches between the job and its table, one line each; none when it fits. Read in a
 * read-only transaction of its own, after `setup` (limits on its statements): call it outside one.
 */
export function checkJobAgainstDatabase(
  client: ClientBase,
  job: JobDefinition,
  setup: string[] = [],
): Promise<string[]> {
  return inTransaction(client, () => mismatches(client, job), ["SET TRANSACTION READ ONLY", ...setup]);
}

async function mismatches(client: ClientBase, job: JobDefinition): Promise<string[]> {
  const where = `${job.schema}.${job.table}`;
  const columns = await tableColumns(client, job);
  if (!columns) return [`job ${job.name}: table ${where} does not exist`];
  const problems: string[] = [];
  const lacks = (column: string, what: string) => {
    if (columns.has(column)) return false;
    problems.push(`job ${job.name}: ${where} has no column ${column} (${what})`);
    return true;
  };
  const checkKind = (column: string, spec: Column, use: "reads" | "writes") => {
    const found = columns.get(column);
    if (!found) return;
    if (!spec.accepts.includes(found.type)) {
      problems.push(
        `job ${job.name}: ${where}.${column} is ${found.type}, the job ${use} it as column.${spec.kind}() (fits ${spec.accepts.join(", ")})`,
      );
    } else if (use === "reads" && !found.notNull && !spec.allowsNull) {
      problems.push(`job ${job.name}: ${where}.${column} may be NULL: declare it column.${spec.kind}().nullable()`);
    } else if (use === "writes" && found.notNull && spec.allowsNull) {
      problems.push(
        `job ${job.name}: ${where}.${column} is NOT NULL, and the job may write NULL to it (column.${spec.kind}().nullable())`,
      );
    }
  };

  const key = columns.get(job.key);
  if (!key) problems.push(`job ${job.name}: ${where} has no key column ${job.key}`);
  else if (!["int2", "int4", "int8"].includes(key.type)) {
    problems.push(`job ${job.name}: key ${where}.${job.key} is ${key.type}, not an integer`);
  } else {
    if (!(await keyIsUnique(client, job))) {
      problems.push(
        (await keyBuildPending(client, job))
          ? `job ${job.name}: key ${where}.${job.key} awaits its unique index, whose build an interrupted import ` +
              `deferred: run \`npm run seed -- import\` again on its directory, as the owner of ${where}, to finish it`
          : `job ${job.name}: key ${where}.${job.key} is neither the primary key nor unique`,
      );
    }
    if (!key.notNull) {
      problems.push(
        `job ${job.name}: key ${where}.${job.key} may be NULL, and a row whose key is NULL lies in no chunk: make it NOT NULL`,
      );
    }
    const beyond = job.keyType === "number" && key.type === "int8" ? await keyBeyondNumbers(client, job) : undefined;
    if (beyond !== undefined) {
      problems.push(
        `job ${job.name}: key ${where}.${job.key} holds ${beyond}, beyond 2^53, where a number is no longer exact: ` +
          `declare keyType "bigint" (or "string")`,
      );
    }
  }
  for (const { column, spec, property } of job.reads) {
    if (!lacks(column, `read as ${property}`)) checkKind(column, spec, "reads");
  }
  for (const { column, spec, property } of job.writes) {
    if (!lacks(column, `written from ${property}`)) checkKind(column, spec, "writes");
  }
  const missingState = Object.values(job.state).filter((column) => !columns.has(column));
  if (missingState.length > 0) {
    problems.push(
      `job ${job.name}: ${where} lacks the state column(s) ${missingState.join(", ")}: ` +
        `add them with the migration \`npm run jobs -- migration ${job.name}\` writes`,
    );
  }
  for (const [role, column] of Object.entries(job.state) as [keyof typeof STATE_TYPES, string][]) {
    const found = columns.get(column);
    if (found && !(STATE_TYPES[role] as readonly string[]).includes(found.type)) {
      problems.push(`job ${job.name}: state column ${where}.${column} is ${found.type}, not ${STATE_TYPES[role][0]}`);
    }
  }
  for (const { column } of job.where) lacks(column, "in where");
  for (const column of job.touch) lacks(column, "in touch");
  problems.push(...touchColumnProblems(job, columns), ...(await whereValueProblems(client, job, columns)));
  return problems;
}

/** A job that does not fit its table: one line per mismatch. */
export class JobMismatchError extends CommandError {
  override name = "JobMismatchError";
}

/** Throws one error listing every mismatch of the jobs with their tables, one line each (checkJobAgainstDatabase). */
export async function assertJobsFitDatabase(
  client: ClientBase,
  jobs: JobDefinition[],
  setup: string[] = [],
): Promise<void> {
  const problems: string[] = [];
  for (const job of jobs) problems.push(...(await checkJobAgainstDatabase(client, job, setup)));
  if (problems.length > 0) throw new JobMismatchError(problems.join("; "), problems);
}
