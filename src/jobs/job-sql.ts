import { type LiteralValue, sqlLiteral } from "../db/literals";
import type { ClaimedRows } from "./claimed-rows";
import { ColumnValueError } from "./columns";
import type { JobDefinition, KeyType } from "./define";

/**
 * Whose rows a statement is about: a run's, which may take part of the job's rows only
 * (RunSubset). Without it, or without a subset, the job's rows are all the job's `where` takes.
 */
export interface RowScope {
  runId: number;
  /** A key range (decimal text), or the keys of the run in batch_run_keys (RunSubset, src/runs/model.ts). */
  subset?: { from?: string; to?: string } | { keysFile: string };
}

/**
 * Which rows a round works through: the claimable ones (a run's first round), those the run
 * failed in its last round and may try again (a retry round), or every row the run failed (the
 * round a retry command starts, their attempts given back).
 */
export type RoundRows = "open" | "retryable" | "failed";

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
  /** The run's key range (alias t), "TRUE" when it has none: the span a plan cuts into chunks. */
  inKeyRange: string;
  /**
   * Claims a slice, as a COPY TO STDOUT (src/db/copy-out.ts) of these values: rows of [firstId,
   * lastId] of the key, above afterId when given, claimable for a run allowed maxAttempts, not
   * processed since plannedAt, at most limit of them, in key order, each read by `readClaimedRow`.
   */
  claimSlice(values: SliceBounds & { maxAttempts: number; plannedAt: Date; limit: number }): string;
  /** Appends a claimed row to `rows` from the claim's fields: the record (key and columns read) and the row's state. */
  readClaimedRow(fields: (string | null)[], rows: ClaimedRows): void;
  /**
   * Writes a slice's outcomes: keys $1, errors $2 (NULL for completed), run $3, the lowest and
   * highest of the keys $4-$5, one array per result column from $6. Returns the rows written.
   */
  writeOutcomes: string;
  /**
   * Locks again the rows of keys $1 (int8[]) still claimable ($2 attempts, not processed since
   * $3), skipping those another transaction holds; returns their keys' text, as a claim reads them.
   */
  relockClaimed: string;
  /** Rows of [$1, $2] still claimable for a run allowed $3 attempts and not processed since $4. */
  countLeftInRange: string;
  /**
   * The sessions holding rows of [$1, $2] still claimable ($3 attempts, not processed since $4)
   * locked, oldest transaction first: how many rows each holds, its pid, its transaction's start
   * and its state. Found through the row's xmax (the locking transaction), that transaction's
   * lock in pg_locks and its session in pg_stat_activity; a row locked by several (a MultiXact)
   * or by none is not counted.
   */
  rowsHeldInRange: string;
  /**
   * Locks the rows of [$1, $2] still claimable ($3 attempts, not processed since $4) that another
   * transaction holds, waiting for their holders; rows free by then are left alone.
   */
  lockLeftInRange: string;
  /**
   * The key (as int8) of the claimable row ($3 attempts, not processed since $4) at offset $5 of
   * [$1, $2], counting only rows no other transaction holds: past the rows a running slice has claimed.
   */
  nthClaimableKey: string;
  /**
   * Of run $1's keys (batch_run_keys), how many name no row the job's `where` (from $2) takes,
   * and the first few of them. An anti-join probing the table's key index per key.
   */
  keysNotTheJobs: string;
  /** Whether any row is work for a new run allowed $1 attempts. */
  hasRowsToProcess: string;
  /**
   * A dry run's sample of the open rows ($2 attempts, `where` from $3), without a lock: for each
   * of $1 positions evenly spaced over the open rows' key span, the first open row at or past it
   * (fewer rows where probes meet the same one), read as a claim reads them, in key order.
   */
  sampleOpenRows: string;
  /** The key (as int8) of the open row ($2 attempts, `where` from $3) at offset $1 in key order. */
  nthOpenKey: string;
  /** Whether a row (alias t) is open: claimable with $4 attempts, and the job's `where` from $6. */
  openRow: string;
  /**
   * The keys (as int8 k) of the rows a round takes: the open ones, or those run $1 failed and may
   * try again ($4 attempts) in the chunks of round $2 - 1 that failed rows; `where` from $6.
   */
  roundKeys: Record<RoundRows, string>;
  /**
   * Gives back their attempts to the rows run $1 failed (the job's `where` from $2): attempts 0,
   * everything else as it was. Returns how many. Locks those rows until the transaction ends.
   */
  resetFailedAttempts: string;
}

/** Where a slice claims: the chunk's range, above the last key the slices before it processed. */
export interface SliceBounds {
  firstId: bigint;
  lastId: bigint;
  afterId?: bigint;
}

/** The record's key from its text, as the job's keyType asks. */
function keyReader(keyType: KeyType): (text: string) => unknown {
  if (keyType === "bigint") return BigInt;
  if (keyType === "string") return (text) => text;
  return (text) => {
    const key = Number(text);
    if (!Number.isSafeInteger(key)) {
      throw new ColumnValueError(
        `key ${text} is beyond 2^53, where a number is no longer exact: declare keyType "bigint"`,
      );
    }
    return key;
  };
}

/** Keys of a run's file that name no row of the job, shown by example: this many. */
const UNMATCHED_EXAMPLES = 5;

const compiled = new WeakMap<JobDefinition, Map<string, JobSql>>();

/** Of the SQL built for runs over a subset, a process keeps the latest few: one run of a job is active at a time. */
const KEPT_SUBSETS = 4;

/**
 * The job's SQL, built on first use; for a run over a subset (`scope`), the run's, restricted to
 * the subset's rows.
 */
export function jobSql(job: JobDefinition, scope?: RowScope): JobSql {
  let built = compiled.get(job);
  if (!built) {
    built = new Map();
    compiled.set(job, built);
  }
  const subset = scope?.subset;
  const name = !subset
    ? ""
    : "keysFile" in subset
      ? `${scope.runId}:keys`
      : `${scope.runId}:${subset.from}:${subset.to}`;
  let sql = built.get(name);
  if (!sql) {
    if (built.size > KEPT_SUBSETS) built.delete([...built.keys()].find((kept) => kept !== "") ?? "");
    sql = buildJobSql(job, subset ? scope : undefined);
    built.set(name, sql);
  }
  return sql;
}

/**
 * The condition (alias t) a run over a subset adds to the job's `where`, its values literals. A
 * file's keys: a semi-join on batch_run_keys's primary key (run_id, key). A statement over a
 * chunk's range or a slice's rows bounds the run's keys too (`keys`, a condition on rk.key):
 * PostgreSQL carries no inequality across a join, and with both sides bounded it walks the
 * listed keys of the range in order and looks each row up by the table's key (a few ms for a
 * slice of 500 rows whether the keys are a third of the table's or a thousandth; a probe per row
 * the table holds took 7 s for the latter). Over all the run's rows (the plan) it hashes them.
 */
function subsetCondition(
  key: string,
  scope: RowScope | undefined,
): { rows: (keys?: string) => string; keyRange: string } {
  const subset = scope?.subset;
  if (!subset) return { rows: () => "", keyRange: "TRUE" };
  if ("keysFile" in subset) {
    const listed = `FROM batch_run_keys rk WHERE rk.run_id = ${sqlLiteral(scope.runId)} AND rk.key = t.${key}`;
    return { rows: (keys) => ` AND EXISTS (SELECT 1 ${listed}${keys ? ` AND ${keys}` : ""})`, keyRange: "TRUE" };
  }
  const bounds = [
    subset.from === undefined ? undefined : `t.${key} >= ${sqlLiteral(BigInt(subset.from))}`,
    subset.to === undefined ? undefined : `t.${key} <= ${sqlLiteral(BigInt(subset.to))}`,
  ].filter((bound) => bound !== undefined);
  const keyRange = bounds.length === 0 ? "TRUE" : bounds.join(" AND ");
  return { rows: () => ` AND ${keyRange}`, keyRange };
}

function buildJobSql(job: JobDefinition, scope?: RowScope): JobSql {
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
  const subset = subsetCondition(key, scope);
  /**
   * The job's own `where`, its values from parameter `first` on (PostgreSQL gives each the
   * column's array type), and the run's subset.
   */
  const jobsWhere = (first: number, param = placeholder) =>
    job.where.map(({ column }, index) => ` AND t.${q(column)} = ANY(${param(first + index)})`).join("");
  /** `keys`: the keys the statement walks, as a condition on rk.key (subsetCondition). */
  const filter = (first: number, param = placeholder, keys?: string) => jobsWhere(first, param) + subset.rows(keys);
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

  /** The claim, its values literals in a COPY, which takes no parameters. */
  const claimSelect = (bounds: SliceBounds, rest: LiteralValue[]) => {
    const literal = (position: number) => sqlLiteral(rest[position - 1] as LiteralValue);
    const [above, lower] = bounds.afterId === undefined ? [">=", bounds.firstId] : [">", bounds.afterId];
    const upper = sqlLiteral(bounds.lastId);
    return `
      SELECT ${selected.join(", ")}
        FROM ${table} t
       WHERE t.${key} ${above} ${sqlLiteral(lower)} AND t.${key} <= ${upper}
         AND ${claimable(literal(1))}
         AND ${notSince(literal(2))}${filter(4, literal, `rk.key ${above} ${sqlLiteral(lower)} AND rk.key <= ${upper}`)}
       ORDER BY t.${key}
       LIMIT ${literal(3)}
         FOR UPDATE OF t SKIP LOCKED`;
  };
  const readKey = keyReader(job.keyType);
  const reads = job.reads.map(({ property, column, spec }) => ({ property, column, fromText: spec.fromText }));
  const filterValues = job.where.map(({ values }) => values);
  /** The rows of [$1, $2] still claimable ($3 attempts, not processed since $4). */
  const leftInRange = `${table} t
       WHERE t.${key} BETWEEN $1 AND $2 AND ${claimable("$3")} AND ${notSince("$4")}${filter(5, placeholder, "rk.key BETWEEN $1 AND $2")}`;
  const openRow = `${claimable("$4")}${filter(6)}`;

  return {
    statementPrefix: scope ? `job:${job.name}:run:${scope.runId}` : `job:${job.name}`,
    table,
    key,
    filterValues,
    inKeyRange: subset.keyRange,
    claimSlice({ maxAttempts, plannedAt, limit, ...bounds }) {
      return `COPY (${claimSelect(bounds, [maxAttempts, plannedAt, limit, ...filterValues])}) TO STDOUT`;
    },
    readClaimedRow(fields, rows) {
      // the claim's columns in order: the key, the columns read, then the row's state
      const key = fields[0] as string;
      const record: Record<string, unknown> = {};
      let index = -1; // the key's, then each column's read
      try {
        record[job.key] = readKey(key);
        for (index = 0; index < reads.length; index++) {
          const { property, fromText } = reads[index] as (typeof reads)[number];
          const text = fields[index + 1] as string | null;
          record[property] = text === null ? null : fromText(text);
        }
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        rows.unreadable.set(rows.length, index < 0 ? why : `column ${reads[index]?.column} ${why}`);
      }
      const state = reads.length + 1;
      const run = fields[state + 1];
      rows.records.push(record);
      rows.keys.push(key);
      rows.statuses.push(fields[state] as string);
      rows.runs.push(run == null ? null : Number(run));
      rows.attempts.push(Number(fields[state + 2]));
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
    relockClaimed: `
      SELECT t.${key}::text AS key FROM ${table} t
       WHERE t.${key} = ANY($1::int8[]) AND ${claimable("$2")} AND ${notSince("$3")}${filter(4, placeholder, "rk.key = ANY($1::int8[])")}
         FOR UPDATE OF t SKIP LOCKED`,
    countLeftInRange: `SELECT count(*)::int AS left FROM ${leftInRange}`,
    rowsHeldInRange: `
      SELECT count(*)::int AS rows, l.pid, a.xact_start AS since, a.state
        FROM (SELECT t.xmax AS locker FROM ${leftInRange}) held
        JOIN pg_locks l ON l.locktype = 'transactionid' AND l.transactionid = held.locker
                       AND l.mode = 'ExclusiveLock' AND l.granted
        LEFT JOIN pg_stat_activity a ON a.pid = l.pid
       GROUP BY l.pid, a.xact_start, a.state
       ORDER BY a.xact_start NULLS LAST`,
    // only rows whose locker still runs: a free row locked here would keep the application waiting
    lockLeftInRange: `
      SELECT 1 FROM ${leftInRange}
         AND t.xmax IN (SELECT l.transactionid FROM pg_locks l WHERE l.locktype = 'transactionid' AND l.granted)
         FOR UPDATE OF t`,
    nthClaimableKey: `
      SELECT t.${key}::int8 AS key FROM ${table} t
       WHERE t.${key} BETWEEN $1 AND $2 AND ${claimable("$3")} AND ${notSince("$4")}${filter(6, placeholder, "rk.key BETWEEN $1 AND $2")}
       ORDER BY t.${key} OFFSET $5 LIMIT 1
         FOR UPDATE OF t SKIP LOCKED`,
    keysNotTheJobs: `
      WITH unmatched AS (
        SELECT rk.key FROM batch_run_keys rk
         WHERE rk.run_id = $1 AND NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.${key} = rk.key${jobsWhere(2)})
      )
      SELECT (SELECT count(*) FROM unmatched)::int8 AS count,
             ARRAY(SELECT key::text FROM unmatched ORDER BY key LIMIT ${UNMATCHED_EXAMPLES}) AS examples`,
    // min and max walk the key's index to the first and last open row; each probe is one index
    // descent (the bound cast to int8, which the integer operator family compares with any
    // integer key): the sample costs its size, not the table's. A plain read: no row lock, and
    // only the statement's snapshot
    sampleOpenRows: `
      WITH span AS (
        SELECT min(t.${key})::numeric AS first, max(t.${key})::numeric AS last
          FROM ${table} t WHERE ${claimable("$2")}${filter(3)}
      ), picked AS (
        SELECT DISTINCT p.k
          FROM span, generate_series(0, $1::int - 1) AS g(i),
          LATERAL (
            SELECT t.${key} AS k FROM ${table} t
             WHERE t.${key} >= (span.first + floor(g.i * (span.last - span.first + 1) / $1::int))::int8
               AND ${claimable("$2")}${filter(3)}
             ORDER BY t.${key} LIMIT 1) p
      )
      SELECT ${selected.join(", ")} FROM ${table} t JOIN picked ON t.${key} = picked.k ORDER BY t.${key}`,
    nthOpenKey: `
      SELECT t.${key}::int8 AS key FROM ${table} t
       WHERE ${claimable("$2")}${filter(3)}
       ORDER BY t.${key} OFFSET $1 LIMIT 1`,
    hasRowsToProcess: `SELECT EXISTS (SELECT 1 FROM ${table} t WHERE ${claimable("$1")}${filter(2)}) AS found`,
    openRow,
    roundKeys: {
      // pending, or failed with attempts left (whichever run failed them), anywhere in the table
      open: `SELECT t.${key}::int8 AS k FROM ${table} t WHERE ${openRow}`,
      // what this run failed and may try again, in the chunks of the last round that failed rows
      retryable: `
        SELECT t.${key}::int8 AS k
          FROM batch_chunks c JOIN ${table} t ON t.${key} BETWEEN c.first_id AND c.last_id
         WHERE c.run_id = $1 AND c.round = $2 - 1 AND c.rows_failed > 0
           AND t.${s.status} = 'failed' AND t.${s.attempts} < $4 AND t.${s.runId} = $1${filter(6)}`,
      // every row this run failed, wherever it lies: one pass over the table, as an open plan's
      failed: `
        SELECT t.${key}::int8 AS k FROM ${table} t
         WHERE t.${s.status} = 'failed' AND t.${s.attempts} < $4 AND t.${s.runId} = $1${filter(6)}`,
    },
    resetFailedAttempts: `
      WITH reset AS (
        UPDATE ${table} t SET ${s.attempts} = 0
         WHERE t.${s.status} = 'failed' AND t.${s.runId} = $1${filter(2)}
        RETURNING 1
      )
      SELECT count(*)::int AS rows FROM reset`,
  };
}
