import type { PoolClient } from "pg";
import { inTransaction } from "../db/pool";
import { KEY_TYPES } from "../db/types";
import type { JobDefinition } from "../jobs/define";
import { type JobSql, jobSql, type RoundRows, type RowScope } from "../jobs/job-sql";
import { chunkQueueJobKeySql } from "./job-queue";
import type { ChunkEnding, ChunkRange, ChunkStatus, RunSettings } from "./model";

/**
 * The SQL of a run's chunks (batch_chunks): each an id range of a round, planned, started, and
 * ended once. Callers own transactions.
 */

const CHUNK_QUEUE_JOB_KEY = chunkQueueJobKeySql("c");

const INT8_MAX = 2n ** 63n - 1n;

/** Buckets are this fraction of a chunk's rows wide: a chunk holds `chunkSize` rows give or take one bucket. */
const BUCKETS_PER_CHUNK = 8;

/** When a plan of the open rows samples them rather than counts them (planSampled). */
export interface Sampling {
  /** From this many rows in the job's table (the planner's estimate) on: counting reads every row. */
  fromRows: number;
  /** Rows the sample reads, in whole blocks: its cost stays flat whatever the table's size. */
  sampleRows: number;
}

/**
 * A tile of a sampled plan whose sample holds this many chunks' rows is cut at its sampled keys.
 * Not fewer: a block sample finds rows a block at a time, so that on evenly spread keys a tile's
 * count varies several times over (at 50,000,000 rows, about one sampled block a chunk).
 */
const CROWDED = 8;

/** Counting takes about 65 s at 50 million rows; a sample of 300,000 rows, a fraction of a second. */
export const SAMPLING: Sampling = { fromRows: 2_000_000, sampleRows: 300_000 };

/** What a plan recorded; `samplePercent` only when its rows are estimates from a block sample of that size. */
export type PlannedChunks = { chunks: number; rows: number; samplePercent?: number };

/**
 * What a plan may take: its statements' time, and a check every second that the client is still
 * there (PostgreSQL 14 on), so that a planning command killed mid-statement leaves no backend
 * working for nobody. SET LOCAL: over when the transaction is, through a pooler too.
 */
export const planningLimits = (timeoutMs: number) => [
  `SET LOCAL statement_timeout = ${Math.ceil(timeoutMs)}`,
  "SET LOCAL client_connection_check_interval = 1000",
];

/**
 * Splits the round's rows of the job's table into chunks of about `chunkSize` rows, each a key
 * range, and records them. A round takes the rows that are claimable (`open`), or those this run
 * failed and may try again in the chunks of its last round that failed rows (`retryable`), or
 * every row this run failed whose attempts a retry command gave back (`failed`).
 *
 * The rows are counted by buckets of the key, an eighth of a chunk wide from the table's first
 * key: only buckets that hold rows exist, so the plan costs what the rows do, however sparse the
 * keys; in key order, each bucket joins the chunk its first row's number falls in. Open rows of a table the planner puts
 * at `sampling.fromRows` rows or more are sampled instead (planSampled). Runs under
 * planningLimits in the caller's transaction.
 */
export async function planChunks(
  client: PoolClient,
  job: JobDefinition,
  runId: number,
  round: number,
  rows: RoundRows,
  settings: RunSettings,
  options: { timeoutMs: number; sampling?: Sampling },
): Promise<PlannedChunks> {
  const sql = jobSql(job, { runId, subset: settings.subset });
  await client.query(planningLimits(options.timeoutMs).join("; "));
  const sampling = options.sampling ?? SAMPLING;
  // a file's keys are counted: the plan reads their rows, no more
  if (rows === "open" && !(settings.subset && "keysFile" in settings.subset)) {
    const spanRows = await estimateTableRows(client, sql, sql.inKeyRange);
    if (spanRows > 0 && spanRows >= sampling.fromRows) {
      const tableRows = sql.inKeyRange === "TRUE" ? spanRows : await estimateTableRows(client, sql, "TRUE");
      return planSampled(client, sql, runId, round, settings, { spanRows, tableRows }, sampling.sampleRows);
    }
  }
  const { rows: spans } = await client.query<{ first: bigint | null; last: bigint | null }>({
    text: `SELECT min(${sql.key})::int8 AS first, max(${sql.key})::int8 AS last FROM ${sql.table}`,
    types: KEY_TYPES,
  });
  const { first, last } = spans[0] ?? { first: null, last: null };
  if (first === null || last === null) return { chunks: 0, rows: 0 };
  const origin = `$${6 + sql.filterValues.length}::int8`;
  // a key's distance from the table's first, in numeric only where BIGINT's would overflow
  const bucket = last - first <= INT8_MAX ? `(k - ${origin}) / $5` : `div(k::numeric - ${origin}, $5)`;
  const { rows: planned } = await client.query<{ chunks: number; rows: number }>(
    `WITH buckets AS (
       SELECT ${bucket} AS bucket, min(k) AS first_id, max(k) AS last_id, count(*) AS n
         FROM (${sql.roundKeys[rows]}) keys
        GROUP BY 1
     ), numbered AS (
       SELECT first_id, last_id, n, ((sum(n) OVER (ORDER BY bucket))::bigint - n) / $3 AS chunk_no FROM buckets
     ), planned AS (
       INSERT INTO batch_chunks (run_id, round, chunk_no, first_id, last_id, planned_rows)
       SELECT $1, $2, chunk_no, min(first_id), max(last_id), sum(n) FROM numbered GROUP BY chunk_no
       RETURNING planned_rows
     )
     SELECT count(*)::int AS chunks, coalesce(sum(planned_rows), 0)::int AS rows FROM planned`,
    [
      runId,
      round,
      settings.chunkSize,
      settings.maxAttempts,
      Math.ceil(settings.chunkSize / BUCKETS_PER_CHUNK),
      ...sql.filterValues,
      first,
    ],
  );
  return planned[0] ?? { chunks: 0, rows: 0 };
}

/**
 * The planner's estimate of the table's rows (alias t) where `condition` holds: its statistics
 * scaled to the table's size now, so that a table grown since its last ANALYZE, or never
 * analyzed, is not taken for a small one.
 */
async function estimateTableRows(client: PoolClient, sql: JobSql, condition: string): Promise<number> {
  const { rows } = await client.query<{ "QUERY PLAN": [{ Plan: { "Plan Rows": number } }] }>(
    `EXPLAIN (FORMAT JSON) SELECT FROM ${sql.table} t WHERE ${condition}`,
  );
  return rows[0]?.["QUERY PLAN"][0].Plan["Plan Rows"] ?? 0;
}

/**
 * The open rows' plan of a large table, reading no more than a sample of it. The chunks tile
 * the key's whole span (the run's key range of it), from its index's min to its max, each as wide as `chunkSize` rows of the
 * table take at its average density; a tile where a block sample (TABLESAMPLE SYSTEM) finds
 * CROWDED times that many rows, where keys crowd together, is cut at every so many of its
 * sampled keys, as many as `chunkSize` rows of it stand for. Every claimable row lies in exactly one chunk
 * whatever the estimates; the chunks are as many as the rows call for, however far apart the
 * keys; and none holds much more than `chunkSize` rows to walk through, even where all the rows
 * crowd into a corner of the span. Each chunk's planned_rows is the open rows the sample finds
 * in it, scaled up; a chunk with none found is planned all the same. As a chunk ends, its
 * planned_rows and the run's total become what it did (endChunk).
 */
async function planSampled(
  client: PoolClient,
  sql: JobSql,
  runId: number,
  round: number,
  settings: RunSettings,
  estimates: { spanRows: number; tableRows: number },
  sampleRows: number,
): Promise<PlannedChunks> {
  // the sample's share of the whole table: its cost stays flat however narrow the run's key range
  const samplePercent = Number(Math.min(100, (100 * sampleRows) / estimates.tableRows).toPrecision(3));
  const sampledPerChunk = Math.max(1, Math.round((settings.chunkSize * samplePercent) / 100));
  const [chunkSize, rows] = [`$${6 + sql.filterValues.length}`, `$${7 + sql.filterValues.length}`];
  // the span and the sample in one statement, one snapshot: no sampled key lies outside the span.
  // Key arithmetic in numeric: BIGINT's whole span overflows it.
  const { rows: planned } = await client.query<{ chunks: number; rows: number }>(
    `WITH span AS (
       SELECT first, last, greatest(${chunkSize}, ceil(${chunkSize} * (last - first + 1) / ${rows})) AS width
         FROM (SELECT min(${sql.key})::numeric AS first, max(${sql.key})::numeric AS last FROM ${sql.table} t WHERE ${sql.inKeyRange}) ends
     ), sampled AS (
       SELECT t.${sql.key}::numeric AS k, ${sql.openRow} AS open,
              floor((t.${sql.key} - span.first) / span.width)::int8 AS tile
         FROM ${sql.table} t TABLESAMPLE SYSTEM ($5::float8), span
        WHERE ${sql.inKeyRange}
     ), cut AS (
       SELECT tile, k, open, (row_number() OVER tile_keys - 1) / $3 AS part, count(*) OVER tile_keys AS in_tile
         FROM sampled
       WINDOW tile_keys AS (PARTITION BY tile ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
     ), parts AS (
       SELECT tile, CASE WHEN in_tile > ${CROWDED} * $3 THEN part ELSE 0 END AS part, min(k) AS first_sampled,
              count(*) FILTER (WHERE open) AS open_sampled
         FROM cut GROUP BY 1, 2
     ), chunks AS (
       SELECT row_number() OVER cuts - 1 AS chunk_no,
              CASE WHEN coalesce(p.part, 0) = 0 THEN span.first + g.tile * span.width ELSE p.first_sampled END AS first_id,
              coalesce(p.open_sampled, 0) AS open_sampled, g.tile, coalesce(p.part, 0) AS part
         FROM span, generate_series(0, floor((span.last - span.first) / span.width)::int8) AS g(tile)
         LEFT JOIN parts p ON p.tile = g.tile
       WINDOW cuts AS (ORDER BY g.tile, coalesce(p.part, 0))
     ), planned AS (
       INSERT INTO batch_chunks (run_id, round, chunk_no, first_id, last_id, planned_rows)
       SELECT $1, $2, chunk_no, first_id::int8,
              coalesce(lead(first_id) OVER (ORDER BY chunk_no) - 1, (SELECT last FROM span))::int8,
              round(open_sampled * 100 / $5)
         FROM chunks
       RETURNING planned_rows
     )
     SELECT count(*)::int AS chunks, coalesce(sum(planned_rows), 0)::int AS rows FROM planned`,
    [
      runId,
      round,
      sampledPerChunk,
      settings.maxAttempts,
      samplePercent,
      ...sql.filterValues,
      settings.chunkSize,
      estimates.spanRows,
    ],
  );
  return { ...(planned[0] ?? { chunks: 0, rows: 0 }), samplePercent };
}

/**
 * Cancels the round's chunks that no worker is running (queued, or left running by a worker
 * that handed them back), and returns how many chunks a worker's job still holds: those end
 * when their job sees the cancel.
 */
export async function cancelIdleChunks(client: PoolClient, runId: number, round: number): Promise<{ running: number }> {
  const { rows } = await client.query<{ running: number }>(
    `WITH idle AS (
       UPDATE batch_chunks c SET status = 'cancelled', finished_at = now(), updated_at = now()
        WHERE c.run_id = $1 AND c.round = $2 AND c.status IN ('queued', 'running', 'deferred')
          AND NOT EXISTS (
            SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${CHUNK_QUEUE_JOB_KEY} AND j.locked_at IS NOT NULL)
       RETURNING c.chunk_no
     )
     SELECT count(*)::int AS running FROM batch_chunks
      WHERE run_id = $1 AND round = $2 AND status IN ('queued', 'running')
        AND chunk_no NOT IN (SELECT chunk_no FROM idle)`,
    [runId, round],
  );
  return rows[0] ?? { running: 0 };
}

/**
 * The run's chunks that have not ended (queued, running, or deferred past a canary), in one round
 * or in all of them. A queued chunk counts: its job may have been taken already, and it ends when
 * that job runs.
 */
export async function countOpenChunks(client: PoolClient, runId: number, round?: number): Promise<number> {
  const { rows } = await client.query<{ open: number }>(
    `SELECT count(*)::int AS open FROM batch_chunks
      WHERE run_id = $1 AND ($2::int IS NULL OR round = $2) AND status IN ('queued', 'running', 'deferred')`,
    [runId, round ?? null],
  );
  return rows[0]?.open ?? 0;
}

/** The chunk's status; undefined when its run has no such chunk. */
export async function findChunkStatus(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
): Promise<ChunkStatus | undefined> {
  const { rows } = await client.query<{ status: ChunkStatus }>(
    "SELECT status FROM batch_chunks WHERE run_id = $1 AND round = $2 AND chunk_no = $3",
    [runId, round, chunkNo],
  );
  return rows[0]?.status;
}

/** Marks the chunk running on this worker (the caller has checked it may run) and returns its range. */
export async function markChunkRunning(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
  worker: string,
): Promise<ChunkRange> {
  const { rows } = await client.query<ChunkRange>({
    text: `UPDATE batch_chunks
              SET status = 'running', worker = $4, attempts = attempts + 1, started_at = now(), updated_at = now()
            WHERE run_id = $1 AND round = $2 AND chunk_no = $3
           RETURNING first_id AS "firstId", last_id AS "lastId", planned_at AS "plannedAt"`,
    values: [runId, round, chunkNo, worker],
    types: KEY_TYPES,
  });
  if (!rows[0]) throw new Error(`chunk ${chunkNo} of round ${round} of batch run ${runId} vanished`);
  return rows[0];
}

/** Rows of the range still claimable in this round: rows another transaction held locked. */
export async function countLeftInRange(
  client: PoolClient,
  job: JobDefinition,
  range: ChunkRange,
  maxAttempts: number,
  scope?: RowScope,
): Promise<number> {
  const sql = jobSql(job, scope);
  const { rows } = await client.query<{ left: number }>(sql.countLeftInRange, [
    range.firstId,
    range.lastId,
    maxAttempts,
    range.plannedAt,
    ...sql.filterValues,
  ]);
  return rows[0]?.left ?? 0;
}

/** Where a chunk's rows are held by another session: its worker records it for `status`. */
export interface RowsHeld {
  rows: number;
  pid: number;
  since: Date | null;
  state: string | null;
}

/**
 * Records on the chunk which sessions hold claimable rows of its range locked (the oldest
 * transaction's, the rows of all of them), for `status`; undefined, recording nothing, when
 * no session holds one any more.
 */
export async function recordRowsHeld(
  client: PoolClient,
  job: JobDefinition,
  chunk: { runId: number; round: number; chunkNo: number },
  range: ChunkRange,
  maxAttempts: number,
  scope?: RowScope,
): Promise<RowsHeld | undefined> {
  const sql = jobSql(job, scope);
  const { rows: holders } = await client.query<RowsHeld>(sql.rowsHeldInRange, [
    range.firstId,
    range.lastId,
    maxAttempts,
    range.plannedAt,
    ...sql.filterValues,
  ]);
  const oldest = holders[0];
  if (!oldest) return undefined;
  const held = { ...oldest, rows: holders.reduce((sum, holder) => sum + holder.rows, 0) };
  // the holder's transaction start: pg_stat_activity shows it to pg_read_all_stats (sql/roles.sql);
  // without it, when the same session was first seen holding them
  await client.query(
    `UPDATE batch_chunks
        SET held_rows = $4, held_by_pid = $5, held_state = $7,
            held_since = coalesce($6, CASE WHEN held_by_pid = $5 THEN held_since END, now())
      WHERE run_id = $1 AND round = $2 AND chunk_no = $3`,
    [chunk.runId, chunk.round, chunk.chunkNo, held.rows, held.pid, held.since, held.state],
  );
  return held;
}

/** Clears what recordRowsHeld recorded: the rows were released. */
export async function clearRowsHeld(
  client: PoolClient,
  chunk: { runId: number; round: number; chunkNo: number },
): Promise<void> {
  await client.query(
    `UPDATE batch_chunks SET held_rows = NULL, held_by_pid = NULL, held_since = NULL, held_state = NULL
      WHERE run_id = $1 AND round = $2 AND chunk_no = $3 AND held_rows IS NOT NULL`,
    [chunk.runId, chunk.round, chunk.chunkNo],
  );
}

/**
 * Waits, at most `timeoutMs`, for the transactions holding claimable rows of the range to end,
 * then lets the rows go at once: those rows are then done, or claimable again. They are a
 * slice's of another chunk, which went on claiming part by part past where this chunk, split
 * from it meanwhile, begins (src/chunks/slice.ts), or an application's. Only rows held are
 * locked, so that no application waits on the wait. False when the wait ran out.
 */
export async function waitForRowsHeld(
  client: PoolClient,
  job: JobDefinition,
  range: ChunkRange,
  maxAttempts: number,
  timeoutMs: number,
  scope?: RowScope,
): Promise<boolean> {
  const sql = jobSql(job, scope);
  try {
    await inTransaction(client, async () => {
      await client.query(sql.lockLeftInRange, [
        range.firstId,
        range.lastId,
        maxAttempts,
        range.plannedAt,
        ...sql.filterValues,
      ]);
      // the locks were only a way to wait: released now, by the rollback below
      throw new RowsReleased();
    }, [
      `SET LOCAL lock_timeout = ${Math.ceil(timeoutMs)}`,
      // the wait may outlast the connection's own statement timeout (CLAIM_TIMEOUT_S)
      `SET LOCAL statement_timeout = ${Math.ceil(timeoutMs) + 1000}`,
    ]);
  } catch (error) {
    if (error instanceof RowsReleased) return true;
    if ((error as { code?: string }).code === LOCK_NOT_AVAILABLE) return false;
    throw error;
  }
  return true;
}

class RowsReleased extends Error {}
const LOCK_NOT_AVAILABLE = "55P03";

/**
 * Ends a chunk (done, failed for good, or stopped by a cancel) and counts it toward its round. Returns true for the
 * transaction that ended the round's last chunk: the row lock on batch_jobs makes exactly one
 * transaction see chunks_done reach chunks_total. A chunk done plans, from then on, the rows it
 * did, and a chunk of round 0 moves the run's total by as many: a sampled plan's estimates (or
 * rows that came or went since the plan) leave a finished run's total exact.
 */
export async function endChunk(
  client: PoolClient,
  runId: number,
  round: number,
  chunkNo: number,
  outcome: ChunkEnding,
): Promise<{ ended: boolean; lastOfRound: boolean; rowsCompleted: number; rowsFailed: number }> {
  const { rows } = await client.query<{ last: boolean; rowsCompleted: number; rowsFailed: number }>(
    `WITH chunk AS (
       UPDATE batch_chunks c
          SET status = $4::text, last_error = $5, finished_at = now(), updated_at = now(),
              planned_rows = CASE WHEN $4::text = 'done' THEN c.rows_completed + c.rows_failed ELSE c.planned_rows END
         FROM batch_chunks before
        WHERE c.run_id = $1 AND c.round = $2 AND c.chunk_no = $3 AND c.status IN ('queued', 'running')
          AND before.run_id = c.run_id AND before.round = c.round AND before.chunk_no = c.chunk_no
       RETURNING c.run_id, c.rows_completed, c.rows_failed, c.planned_rows - before.planned_rows AS correction
     ), run AS (
       UPDATE batch_jobs r
          SET chunks_done = chunks_done + 1, updated_at = now(),
              total_records = r.total_records + CASE WHEN $2 = 0 THEN chunk.correction ELSE 0 END
         FROM chunk
        WHERE r.id = chunk.run_id AND r.round = $2
       RETURNING r.chunks_done = r.chunks_total AS last
     )
     SELECT run.last, chunk.rows_completed AS "rowsCompleted", chunk.rows_failed AS "rowsFailed" FROM run, chunk`,
    [runId, round, chunkNo, outcome.status, outcome.status === "failed" ? outcome.error : null],
  );
  const row = rows[0];
  return {
    ended: row !== undefined,
    lastOfRound: row?.last ?? false,
    rowsCompleted: row?.rowsCompleted ?? 0,
    rowsFailed: row?.rowsFailed ?? 0,
  };
}

export async function failedChunks(
  client: PoolClient,
  runId: number,
  round: number,
): Promise<{ count: number; firstError: string | null }> {
  const { rows } = await client.query<{ count: number; firstError: string | null }>(
    `SELECT count(*)::int AS count, (array_agg(last_error ORDER BY chunk_no))[1] AS "firstError"
       FROM batch_chunks WHERE run_id = $1 AND round = $2 AND status = 'failed'`,
    [runId, round],
  );
  return rows[0] ?? { count: 0, firstError: null };
}

/**
 * Whether a chunk of the round waits for a worker: not ended, and its job not taken (queued, or
 * handed back or released from a dead worker). An idle worker has that to take.
 */
export async function hasWaitingChunk(client: PoolClient, runId: number, round: number): Promise<boolean> {
  const { rows } = await client.query<{ waiting: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM batch_chunks c LEFT JOIN graphile_worker.jobs j ON j.key = ${CHUNK_QUEUE_JOB_KEY}
        WHERE c.run_id = $1 AND c.round = $2 AND c.status IN ('queued', 'running') AND j.locked_at IS NULL
     ) AS waiting`,
    [runId, round],
  );
  return rows[0]?.waiting ?? false;
}

/**
 * The key the upper half of a running chunk's claimable rows starts at, and how many rows each
 * half holds; undefined when fewer than `minRows` are left. Walks the key's index over half the
 * rows left, skipping (and counting out) the rows the chunk's slice in flight holds, so that the
 * new chunk starts past them and never waits for them. The rows it walks stay locked until the
 * caller's transaction ends: a moment.
 */
export async function findSplitKey(
  client: PoolClient,
  job: JobDefinition,
  range: ChunkRange,
  maxAttempts: number,
  minRows: number,
  scope?: RowScope,
): Promise<{ key: bigint; kept: number; given: number } | undefined> {
  const left = await countLeftInRange(client, job, range, maxAttempts, scope);
  if (left < minRows) return undefined;
  const kept = Math.floor(left / 2);
  const sql = jobSql(job, scope);
  const { rows } = await client.query<{ key: bigint }>({
    text: sql.nthClaimableKey,
    values: [range.firstId, range.lastId, maxAttempts, range.plannedAt, kept, ...sql.filterValues],
    types: KEY_TYPES,
  });
  const key = rows[0]?.key;
  return key === undefined ? undefined : { key, kept, given: left - kept };
}

/**
 * Splits a running chunk at `key`: it keeps the ids below, a new chunk of the round (numbered
 * after the last) takes `key` to its end, and the round counts one chunk more. Both plan the
 * rows counted now: the old one what it did and `kept`, the new one `given`; in round 0 the run's
 * total moves by the difference from the old chunk's plan (none unless its rows were estimates,
 * or came or went since the plan). The caller holds the run's lock and adds the new chunk's job.
 */
export async function splitChunk(
  client: PoolClient,
  ref: { runId: number; round: number; chunkNo: number },
  split: { key: bigint; kept: number; given: number },
): Promise<number> {
  const { rows } = await client.query<{ chunkNo: number }>(
    `WITH old AS (
       UPDATE batch_chunks c
          SET last_id = $4::int8 - 1, planned_rows = c.rows_completed + c.rows_failed + $6, updated_at = now()
         FROM batch_chunks before
        WHERE c.run_id = $1 AND c.round = $2 AND c.chunk_no = $3 AND c.status = 'running'
          AND before.run_id = c.run_id AND before.round = c.round AND before.chunk_no = c.chunk_no
       RETURNING before.last_id, c.planned_at, c.planned_rows + $5 - before.planned_rows AS correction
     ), added AS (
       INSERT INTO batch_chunks (run_id, round, chunk_no, first_id, last_id, planned_rows, planned_at)
       SELECT $1, $2, (SELECT max(chunk_no) + 1 FROM batch_chunks WHERE run_id = $1 AND round = $2),
              $4::int8, old.last_id, $5, old.planned_at
         FROM old
       RETURNING chunk_no
     ), counted AS (
       UPDATE batch_jobs
          SET chunks_total = chunks_total + 1, updated_at = now(),
              total_records = total_records + CASE WHEN $2 = 0 THEN (SELECT correction FROM old) ELSE 0 END
        WHERE id = $1 AND EXISTS (SELECT 1 FROM added)
     )
     SELECT chunk_no AS "chunkNo" FROM added`,
    [ref.runId, ref.round, ref.chunkNo, split.key, split.given, split.kept],
  );
  if (!rows[0]) throw new Error(`chunk ${ref.chunkNo} of round ${ref.round} of batch run ${ref.runId} is not running`);
  return rows[0].chunkNo;
}

/**
 * Cuts round 0 of a run with a canary after its first `rows` open rows (by key; of its subset,
 * when it has one): the chunk where
 * they end is cut before the next open row (a new chunk, numbered after the last, takes the rest
 * of its range), and every chunk from that row on is `deferred`: no job, no backlog, until the
 * resume after the canary (releaseDeferredChunks). The cut chunk's planned rows are shared by
 * the rows planned before it (exact for a counted plan; a sampled plan's estimates are made exact
 * as chunks end). Nothing is deferred when the open rows are `rows` or fewer. The caller holds
 * the run's lock, in the plan's transaction, after beginRound; returns the chunks deferred, and
 * the chunks the cut added (0 or 1).
 */
export async function deferPastCanary(
  client: PoolClient,
  job: JobDefinition,
  runId: number,
  settings: RunSettings,
  rows: number,
): Promise<{ deferred: number; added: number }> {
  const sql = jobSql(job, { runId, subset: settings.subset });
  // the first open row past the canary: an index walk over `rows` keys
  const { rows: next } = await client.query<{ key: bigint }>({
    text: sql.nthOpenKey,
    values: [rows, settings.maxAttempts, ...sql.filterValues],
    types: KEY_TYPES,
  });
  const cutAt = next[0]?.key;
  if (cutAt === undefined) return { deferred: 0, added: 0 };
  const { rows: deferred } = await client.query<{ deferred: number; added: number }>(
    `WITH cut AS (
       UPDATE batch_chunks c
          SET last_id = $2::int8 - 1,
              planned_rows = least(c.planned_rows, greatest(0, $3 - (
                SELECT coalesce(sum(b.planned_rows), 0) FROM batch_chunks b
                 WHERE b.run_id = $1 AND b.round = 0 AND b.last_id < c.first_id)))
         FROM batch_chunks before
        WHERE c.run_id = $1 AND c.round = 0 AND c.first_id < $2::int8 AND c.last_id >= $2::int8
          AND before.run_id = c.run_id AND before.round = c.round AND before.chunk_no = c.chunk_no
       RETURNING before.last_id, before.planned_rows - c.planned_rows AS rest, c.planned_at
     ), added AS (
       INSERT INTO batch_chunks (run_id, round, chunk_no, first_id, last_id, planned_rows, planned_at, status)
       SELECT $1, 0, (SELECT max(chunk_no) + 1 FROM batch_chunks WHERE run_id = $1 AND round = 0),
              $2::int8, cut.last_id, cut.rest, cut.planned_at, 'deferred'
         FROM cut
       RETURNING 1
     ), later AS (
       UPDATE batch_chunks SET status = 'deferred', updated_at = now()
        WHERE run_id = $1 AND round = 0 AND first_id >= $2::int8 AND status = 'queued'
       RETURNING 1
     ), counted AS (
       UPDATE batch_jobs SET chunks_total = chunks_total + (SELECT count(*) FROM added), updated_at = now()
        WHERE id = $1
     )
     SELECT (SELECT count(*) FROM added)::int AS added,
            (SELECT count(*) FROM added)::int + (SELECT count(*) FROM later)::int AS deferred`,
    [runId, cutAt, rows],
  );
  return deferred[0] ?? { deferred: 0, added: 0 };
}

/** What a run's canary did: its rows done and failed, in the chunks of round 0 that ended. */
export interface CanaryEnd {
  rows: number;
  failed: number;
}

/**
 * The canary's end: round 0 has deferred chunks and none other left to end. Its rows are those
 * of the round's ended chunks, all of them the canary's: a deferred chunk ends only after the
 * resume that releases it. Undefined while the canary runs, and once its rows are released.
 */
export async function findCanaryEnd(client: PoolClient, runId: number): Promise<CanaryEnd | undefined> {
  const { rows } = await client.query<CanaryEnd & { deferred: number; open: number }>(
    `SELECT count(*) FILTER (WHERE status = 'deferred')::int AS deferred,
            count(*) FILTER (WHERE status IN ('queued', 'running'))::int AS open,
            coalesce(sum(rows_completed + rows_failed) FILTER (WHERE status IN ('done', 'failed')), 0)::int AS rows,
            coalesce(sum(rows_failed) FILTER (WHERE status IN ('done', 'failed')), 0)::int AS failed
       FROM batch_chunks WHERE run_id = $1 AND round = 0`,
    [runId],
  );
  const found = rows[0];
  if (!found || found.deferred === 0 || found.open > 0) return undefined;
  return { rows: found.rows, failed: found.failed };
}

/** Makes the deferred chunks of round 0 queued, for the resume after the canary to enqueue; returns how many. */
export async function releaseDeferredChunks(client: PoolClient, runId: number): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE batch_chunks SET status = 'queued', updated_at = now()
      WHERE run_id = $1 AND round = 0 AND status = 'deferred'`,
    [runId],
  );
  return rowCount ?? 0;
}
