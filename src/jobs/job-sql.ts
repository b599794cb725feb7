import { type LiteralValue, sqlLiteral } from "../db/literals";
import type { ClaimedRow } from "../processing/run-records";
import type { RoundRows } from "../runs/model";
import type { JobDefinition } from "./define";

/**
 * The SQL of one job over its table, built once from its definition: identifiers quoted,
 * values always parameters. The statements keep the plans noted in src/chunks/slice.ts and
 * src/runs/chunks.ts: chunks and slices are ranges of the key, walked through its index.
 */

export const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

const placeholder = (position: number) => `$${position}`;

export interface JobSql {
  /** Names the statements prepared on each connection: one set per job. */
  statementPrefix: string;
  /** `schema.table`, quoted. */
  table: string;
  /** The key, quoted (qualified by the alias t where a statement needs it). */
  key: string;
  /** The values of the job's `where`, appended after each statement's own parameters. */
  filterValues: unknown[][];
  /**
   * Claims a slice, as a COPY TO STDOUT (src/db/copy-out.ts) of these values: rows of
   * (afterId, lastId] of the key, claimable for a run allowed maxAttempts, not processed since
   * plannedAt, at most limit of them, in key order, each read by `claimedRow`.
   */
  claimSlice(values: { afterId: number; lastId: number; maxAttempts: number; plannedAt: Date; limit: number }): string;
  /** A claimed row from the claim's fields: the key, the columns read, and the row's state as $status, $run and $attempts. */
  claimedRow(fields: (string | null)[]): ClaimedRow;
  /**
   * Writes a slice's outcomes: keys $1, errors $2 (NULL for completed), run $3, the lowest and
   * highest of the keys $4-$5, one array per result column from $6. Returns the rows written.
   */
  writeOutcomes: string;
  /** Rows of [$1, $2] still claimable for a run allowed $3 attempts and not processed since $4. */
  countLeftInRange: string;
  /** Locks the rows of [$1, $2] still claimable ($3 attempts, not processed since $4), waiting for their holders. */
  lockLeftInRange: string;
  /**
   * The key of the claimable row ($3 attempts, not processed since $4) at offset $5 of ($1, $2],
   * counting only rows no other transaction holds: past the rows a running slice has claimed.
   */
  nthClaimableKey: string;
  /** Whether any row is work for a new run allowed $1 attempts. */
  hasRowsToProcess: string;
  /**
   * Ranges (lo, hi) of at most $5 keys where a round looks for rows, and the rows it takes there
   * (alias t: run $1, $4 attempts, the job's `where` from $6), which a sampled plan reads alone.
   */
  roundRows: Record<RoundRows, { ranges: string; rows: string }>;
}

const compiled = new WeakMap<JobDefinition, JobSql>();

/** The job's SQL, built on first use. */
export function jobSql(job: JobDefinition): JobSql {
  let sql = compiled.get(job);
  if (!sql) {
    sql = buildJobSql(job);
    compiled.set(job, sql);
  }
  return sql;
}

function buildJobSql(job: JobDefinition): JobSql {
  const q = quoteIdentifier;
  const table = `${q(job.schema)}.${q(job.table)}`;
  const key = q(job.key);
  const s = {
    status: q(job.state.status),
    attempts: q(job.state.attempts),
    error: q(job.state.error),
    runId: q(job.state.runId),
    processedAt: q(job.state.processedAt),
  };
  /** The job's own `where`, its values from parameter `first` on; PostgreSQL gives each the column's array type. */
  const filter = (first: number, param = placeholder) =>
    job.where.map(({ column }, index) => ` AND t.${q(column)} = ANY(${param(first + index)})`).join("");
  const claimable = (maxAttempts: string) =>
    `(t.${s.status} = 'pending' OR (t.${s.status} = 'failed' AND t.${s.attempts} < ${maxAttempts}))`;
  const notSince = (instant: string) => `(t.${s.processedAt} IS NULL OR t.${s.processedAt} < ${instant})`;

  const selected = [
    `t.${key} AS ${key}`,
    ...job.reads.map(({ property, column }) => `t.${q(column)} AS ${q(property)}`),
    `t.${s.status} AS "$status"`,
    `t.${s.runId} AS "$run"`,
    `t.${s.attempts} AS "$attempts"`,
  ];
  const results = job.writes.map(({ column, spec }, index) => ({
    column: q(column),
    alias: `r${index}`,
    param: `$${6 + index}::${spec.arrayType}[]`,
  }));
  const assignments = [
    `${s.status} = CASE WHEN o.error IS NULL THEN 'completed' ELSE 'failed' END`,
    `${s.attempts} = t.${s.attempts} + 1`,
    `${s.error} = o.error`,
    ...results.map(({ column, alias }) => `${column} = CASE WHEN o.error IS NULL THEN o.${alias} ELSE t.${column} END`),
    `${s.runId} = $3`,
    `${s.processedAt} = now()`,
    ...job.touch.map((column) => `${q(column)} = now()`),
  ];

  /** The claim, its values given by `param`: literals in a COPY, which takes no parameters. */
  const claimSelect = (param: (position: number) => string) => `
      SELECT ${selected.join(", ")}
        FROM ${table} t
       WHERE t.${key} > ${param(1)} AND t.${key} <= ${param(2)}
         AND ${claimable(param(3))}
         AND ${notSince(param(4))}${filter(6, param)}
       ORDER BY t.${key}
       LIMIT ${param(5)}
         FOR UPDATE OF t SKIP LOCKED`;
  // the claim's columns in order: the property each is read as, from its text
  const claimedProperties = [job.key, ...job.reads.map(({ property }) => property), "$status", "$run", "$attempts"];
  const fromText = [Number, ...job.reads.map(({ spec }) => spec.fromText), String, Number, Number];
  const filterValues = job.where.map(({ values }) => values);
  /** The rows of [$1, $2] still claimable ($3 attempts, not processed since $4). */
  const leftInRange = `${table} t
       WHERE t.${key} BETWEEN $1 AND $2 AND ${claimable("$3")} AND ${notSince("$4")}${filter(5)}`;

  return {
    statementPrefix: `job:${job.name}`,
    table,
    key,
    filterValues,
    claimSlice({ afterId, lastId, maxAttempts, plannedAt, limit }) {
      const values = [afterId, lastId, maxAttempts, plannedAt, limit, ...filterValues];
      return `COPY (${claimSelect((position) => sqlLiteral(values[position - 1] as LiteralValue))}) TO STDOUT`;
    },
    claimedRow(fields) {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < claimedProperties.length; i++) {
        const text = fields[i] as string | null;
        row[claimedProperties[i] as string] = text === null ? null : (fromText[i] as (text: string) => unknown)(text);
      }
      return row as ClaimedRow;
    },
    writeOutcomes: `
      WITH outcome AS (
        SELECT * FROM unnest($1::int8[], $2::text[]${results.map((r) => `, ${r.param}`).join("")})
          AS o(key, error${results.map((r) => `, ${r.alias}`).join("")})
      ), written AS (
        UPDATE ${table} t
           SET ${assignments.join(",\n               ")}
          FROM outcome o
         WHERE t.${key} = o.key AND t.${key} BETWEEN $4 AND $5
        RETURNING 1
      )
      SELECT count(*)::int AS written FROM written`,
    countLeftInRange: `SELECT count(*)::int AS left FROM ${leftInRange}`,
    lockLeftInRange: `SELECT 1 FROM ${leftInRange} FOR UPDATE OF t`,
    nthClaimableKey: `
      SELECT t.${key} AS key FROM ${table} t
       WHERE t.${key} > $1 AND t.${key} <= $2 AND ${claimable("$3")} AND ${notSince("$4")}${filter(6)}
       ORDER BY t.${key} OFFSET $5 LIMIT 1
         FOR UPDATE OF t SKIP LOCKED`,
    hasRowsToProcess: `SELECT EXISTS (SELECT 1 FROM ${table} t WHERE ${claimable("$1")}${filter(2)}) AS found`,
    roundRows: {
      // pending, or failed with attempts left (whichever run failed them), anywhere in the table
      open: {
        ranges: `SELECT b.lo, b.lo + $5 - 1 AS hi
                   FROM (SELECT min(${key}) AS first, max(${key}) AS last FROM ${table}) k,
                        generate_series(k.first, k.last, $5) AS b(lo)`,
        rows: `${claimable("$4")}${filter(6)}`,
      },
      // what this run failed and may try again, in the chunks of the last round that failed rows
      retryable: {
        ranges: `SELECT b.lo, least(b.lo + $5 - 1, c.last_id) AS hi
                   FROM batch_chunks c, generate_series(c.first_id, c.last_id, $5) AS b(lo)
                  WHERE c.run_id = $1 AND c.round = $2 - 1 AND c.rows_failed > 0`,
        rows: `t.${s.status} = 'failed' AND t.${s.attempts} < $4 AND t.${s.runId} = $1${filter(6)}`,
      },
    },
  };
}
