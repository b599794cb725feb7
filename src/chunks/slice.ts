import type { PoolClient } from "pg";
import { inTransaction } from "../db/pool";
import { ROW_TYPES } from "../db/types";
import type { JobDefinition } from "../jobs/define";
import { jobSql } from "../jobs/job-sql";
import type { ClaimedRow, RecordOutcome } from "../processing/run-records";

/**
 * One slice of a chunk: a short transaction that claims the next rows of the chunk's id range
 * with FOR UPDATE SKIP LOCKED, runs the business logic on them, and writes every row's outcome
 * together with the chunk's and the run's counters.
 *
 * The claim is the row lock, not a write: claimed rows are never marked `processing`, so a
 * worker that dies leaves nothing behind. Its transaction ends with its connection, the locks
 * go with it, and the rows are still pending for the next worker. Each row is written once.
 */

export interface SliceRequest {
  job: JobDefinition;
  runId: number;
  round: number;
  chunkNo: number;
  /** The chunk's id range, inclusive. */
  firstId: number;
  lastId: number;
  /** Claim only ids above this one (the slices before have covered the rest). */
  afterId: number;
  limit: number;
  maxAttempts: number;
  /** When the chunk was planned: rows processed since then belong to this round already. */
  plannedAt: Date;
  statementTimeoutMs: number;
  /** Longest the transaction may sit idle while the business logic runs. */
  idleTimeoutMs: number;
}

export interface SliceResult {
  claimed: number;
  /** Claimed rows that got an outcome (completed, failed or retryable): a prefix, the rest go back unprocessed at commit. */
  done: number;
  /** The highest id processed (the request's afterId when none was). */
  lastProcessedId: number;
  completed: number;
  /** Rows failed for good (no attempts left). */
  failed: number;
  /** Rows failed with attempts left. */
  retryable: number;
  /** The run's status after the slice (a paused or cancelled run stops its chunks). "running"
   *  when nothing was written. */
  runStatus: string;
  /** The chunk's last id after the slice: lower than the request's when another worker took part of the range. */
  chunkLastId: number;
  /** Time spent claiming, and writing outcomes and counters (the commit aside). */
  claimMs: number;
  writeMs: number;
}

/*
 * The job's statements (src/jobs/job-sql.ts). The claim takes rows that are claimable
 * (pending, or failed with attempts left) and not yet processed in this round, walking the key's
 * index through the chunk's range. The outcomes are written in one statement; its range bound
 * on the key keeps the planner from walking the index from its start for every slice.
 */

/** Failed attempts by message; sorted, so that concurrent slices lock the rows in one order. */
const COUNT_ERRORS = `
  INSERT INTO batch_errors (run_id, message, attempts, last_seen)
  SELECT $1, left(message, 500), count(*), now() FROM unnest($2::text[]) AS e(message) GROUP BY 2 ORDER BY 2
  ON CONFLICT (run_id, message)
  DO UPDATE SET attempts = batch_errors.attempts + excluded.attempts, last_seen = excluded.last_seen`;

/**
 * The run's and the chunk's counters, and the run's progress sample, the last statement before
 * COMMIT. Every slice of the run updates the run's row, so its lock is taken last and held only
 * for the commit; the chunk is updated from the run's row, after it, the order control commands
 * lock them in too. Only a chunk that has not ended, of a run that has not ended, counts: the
 * slice finds none (and is rolled back) when another job ended the chunk while it ran.
 */
const COUNT_OUTCOMES = `
  WITH run AS (
    UPDATE batch_jobs
       SET processed_records = processed_records + $2,
           failed_records = failed_records + $3,
           retryable_records = retryable_records + $4,
           updated_at = now()
     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
    RETURNING id, status, processed_records + failed_records AS done
  ), chunk AS (
    UPDATE batch_chunks c
       SET rows_completed = rows_completed + $2, rows_failed = rows_failed + $5, updated_at = now()
      FROM run
     WHERE c.run_id = run.id AND c.round = $6 AND c.chunk_no = $7 AND c.status IN ('queued', 'running')
    RETURNING c.last_id
  ), sample AS (
    INSERT INTO batch_samples (run_id, bucket, at, done)
    SELECT id, floor(extract(epoch FROM now()) / 5), now(), done FROM run
    ON CONFLICT DO NOTHING
  )
  SELECT run.status, chunk.last_id AS "chunkLastId" FROM run, chunk`;

/** The slice's chunk (or its run) ended while the slice ran: another job ended it. */
export class ChunkEndedError extends Error {
  override name = "ChunkEndedError";
}

interface Tally {
  completed: number;
  failed: number;
  retryable: number;
  /** Claimed rows this run had failed before: they leave its retryable count. */
  retriedFromThisRun: number;
}

/**
 * The arrays the outcome statement takes (keys, errors, then one per result column), and what
 * the outcomes add to the counters.
 */
function outcomeColumns(rows: ClaimedRow[], outcomes: RecordOutcome[], request: SliceRequest) {
  const { job } = request;
  const keys: number[] = [];
  const errors: (string | null)[] = [];
  const properties = job.writes.map((column) => column.property);
  const results = properties.map(() => [] as unknown[]);
  const tally: Tally = { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 };
  for (let index = 0; index < outcomes.length; index++) {
    const outcome = outcomes[index] as RecordOutcome;
    const row = rows[index] as ClaimedRow;
    keys.push(row[job.key] as number);
    // only retry rounds take rows this run failed; round 0 counts none even if a clock went back
    if (request.round > 0 && row.$status === "failed" && row.$run === request.runId) {
      tally.retriedFromThisRun++;
    }
    if (outcome.status === "completed") {
      tally.completed++;
      errors.push(null);
      for (let column = 0; column < properties.length; column++) {
        (results[column] as unknown[]).push(outcome.result?.[properties[column] as string] ?? null);
      }
    } else {
      if (row.$attempts + 1 >= request.maxAttempts) tally.failed++;
      else tally.retryable++;
      errors.push(outcome.error);
      for (const values of results) values.push(null);
    }
  }
  return { keys, errors, results, tally };
}

/**
 * Runs one slice; undefined when nothing was left to claim. `processRecords` returns outcomes
 * for a prefix of the records it is given; the rest are released unwritten at commit.
 */
export async function runSlice(
  client: PoolClient,
  request: SliceRequest,
  processRecords: (records: ClaimedRow[]) => Promise<RecordOutcome[]>,
): Promise<SliceResult | undefined> {
  const setup = [
    `SET LOCAL statement_timeout = ${Math.ceil(request.statementTimeoutMs)}`,
    `SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(request.idleTimeoutMs)}`,
  ];
  return inTransaction(
    client,
    async () => {
      const claimStart = performance.now();
      const sql = jobSql(request.job);
      const { rows } = await client.query<ClaimedRow>({
        name: `${sql.statementPrefix}:claim-slice`,
        text: sql.claimSlice,
        values: [
          request.afterId,
          request.lastId,
          request.maxAttempts,
          request.plannedAt,
          request.limit,
          ...sql.filterValues,
        ],
        types: ROW_TYPES,
      });
      if (rows.length === 0) return undefined;
      const claimMs = performance.now() - claimStart;

      const outcomes = await processRecords(rows);
      const writeStart = performance.now();
      const { keys, errors, results, tally } = outcomeColumns(rows, outcomes, request);
      const result = {
        claimed: rows.length,
        done: outcomes.length,
        lastProcessedId:
          outcomes.length > 0
            ? ((rows[outcomes.length - 1] as ClaimedRow)[request.job.key] as number)
            : request.afterId,
        completed: tally.completed,
        failed: tally.failed,
        retryable: tally.retryable,
        runStatus: "running",
        chunkLastId: request.lastId,
        claimMs,
        writeMs: 0,
      };
      if (outcomes.length === 0) return result;

      const { rows: written } = await client.query<{ written: number }>({
        name: `${sql.statementPrefix}:write-outcomes`,
        text: sql.writeOutcomes,
        values: [keys, errors, request.runId, request.firstId, request.lastId, ...results],
      });
      if (written[0]?.written !== outcomes.length) {
        throw new Error(
          `slice of run ${request.runId} wrote ${written[0]?.written ?? 0} of ${outcomes.length} outcomes`,
        );
      }
      const messages = errors.filter((error): error is string => error !== null);
      if (messages.length > 0) {
        await client.query({ name: "count-errors", text: COUNT_ERRORS, values: [request.runId, messages] });
      }
      const { rows: run } = await client.query<{ status: string; chunkLastId: number }>({
        name: "count-outcomes",
        text: COUNT_OUTCOMES,
        values: [
          request.runId,
          tally.completed,
          tally.failed,
          tally.retryable - tally.retriedFromThisRun,
          tally.failed + tally.retryable,
          request.round,
          request.chunkNo,
        ],
        types: ROW_TYPES,
      });
      if (!run[0]) {
        throw new ChunkEndedError(
          `chunk ${request.chunkNo} of round ${request.round} of batch run ${request.runId} ended while a slice ran`,
        );
      }
      return {
        ...result,
        runStatus: run[0].status,
        chunkLastId: run[0].chunkLastId,
        writeMs: performance.now() - writeStart,
      };
    },
    setup,
  );
}
