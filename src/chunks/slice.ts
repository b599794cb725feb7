import type { PoolClient } from "pg";
import { copyOutRows } from "../db/copy-out";
import { plainArrayLiteral } from "../db/literals";
import { inTransaction } from "../db/pool";
import { ROW_TYPES } from "../db/types";
import type { JobDefinition } from "../jobs/define";
import { jobSql } from "../jobs/job-sql";
import type { ClaimedRow, RecordFeed, RecordOutcome } from "../processing/run-records";

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
  /** The chunk's last id: claim no id above it. */
  lastId: number;
  /** Claim only ids above this one (the slices before have covered the rest). */
  afterId: number;
  limit: number;
  /**
   * Rows claimed at a time: the next part is claimed while the records of those before run, and
   * outcomes are written a part at a time as they come (SliceTransaction). Unset: the slice is
   * claimed at once and written at once.
   */
  part?: number;
  /**
   * Called once the slice has claimed its whole limit, with the last key claimed: the chunk's
   * next slice can start after it while this one's records finish (work-through-chunk.ts).
   */
  onClaimedAll?: (lastKey: number) => void;
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
 * index through the chunk's range under LockRows, as a COPY whose text the worker decodes in one
 * go (src/db/copy-out.ts). The outcomes are written in one statement; its range bound on the
 * key, the lowest and highest key it writes, keeps the planner from walking the index from its
 * start for every slice, and its join to the rows it writes.
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
 * the outcomes add to the counters, for the records of `indexes`.
 */
function outcomeColumns(rows: ClaimedRow[], outcomes: RecordOutcome[], indexes: number[], request: SliceRequest) {
  const { job } = request;
  const keys: number[] = [];
  const errors: (string | null)[] = [];
  const properties = job.writes.map((column) => column.property);
  const results = properties.map(() => [] as unknown[]);
  const tally: Tally = { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 };
  for (const index of indexes) {
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

/** An outcome column as the write's parameter: as a literal where that is quicker than node-postgres's encoding. */
const asArrayParameter = (values: unknown[]) => plainArrayLiteral(values) ?? values;

/**
 * The statements of one slice's transaction, on its one connection, one at a time. With a
 * `part`, rows are claimed a part at a time, the next while the records of those before run, and
 * outcomes written a part at a time while the others run: records in flight wait neither for the
 * claim nor for the write of the whole slice. Everything stays in the one transaction, so the
 * slice still commits or rolls back whole.
 */
class SliceTransaction implements RecordFeed {
  readonly rows: ClaimedRow[] = [];
  readonly outcomes: RecordOutcome[] = [];
  private readonly sql;
  private readonly part: number;
  /** Statements run one after another; the first that fails fails the slice. */
  private queue: Promise<void> = Promise.resolve();
  private failure: unknown;
  private claiming: Promise<void> | undefined;
  private exhausted = false;
  private writing = false;
  private unwritten: number[] = [];
  private readonly messages: string[] = [];
  readonly tally: Tally = { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 };
  written = 0;
  claimMs = 0;
  writeMs = 0;

  constructor(
    private readonly client: PoolClient,
    private readonly request: SliceRequest,
  ) {
    this.sql = jobSql(request.job);
    this.part = Math.min(request.part ?? request.limit, request.limit);
  }

  /** The lowest and highest key of the rows at `indexes`: rows are claimed in key order. */
  private keyRange(indexes: number[]): [number, number] {
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const index of indexes) {
      if (index < first) first = index;
      if (index > last) last = index;
    }
    const key = (index: number) => (this.rows[index] as ClaimedRow)[this.request.job.key] as number;
    return [key(first), key(last)];
  }

  private run(statement: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(async () => {
      if (this.failure === undefined) await statement();
    });
    this.queue = this.queue.catch((error: unknown) => {
      this.failure ??= error;
      this.exhausted = true;
    });
    return this.queue;
  }

  /** Claims the next part (at most the slice's limit in all), after the rows claimed so far. */
  claimNext(): Promise<void> {
    if (this.claiming) return this.claiming;
    const claim = this.run(async () => {
      const started = performance.now();
      const last = this.rows.at(-1);
      const afterId = last ? (last[this.request.job.key] as number) : this.request.afterId;
      const wanted = Math.min(this.part, this.request.limit - this.rows.length);
      const claim = this.sql.claimSlice({
        afterId,
        lastId: this.request.lastId,
        maxAttempts: this.request.maxAttempts,
        plannedAt: this.request.plannedAt,
        limit: wanted,
      });
      const rows = await copyOutRows(this.client, claim, this.sql.claimedRow);
      for (const row of rows) this.rows.push(row);
      this.exhausted = rows.length < wanted || this.rows.length >= this.request.limit;
      const lastClaimed = this.rows.at(-1);
      if (lastClaimed && this.rows.length >= this.request.limit) {
        this.request.onClaimedAll?.(lastClaimed[this.request.job.key] as number);
      }
      this.claimMs += performance.now() - started;
    });
    this.claiming = claim.finally(() => {
      this.claiming = undefined;
    });
    return this.claiming;
  }

  async more(length: number): Promise<boolean> {
    while (this.rows.length <= length) {
      if (this.exhausted && !this.claiming) return false;
      await this.claimNext();
    }
    return true;
  }

  started(index: number): void {
    if (!this.exhausted && this.rows.length - index <= this.part / 2) void this.claimNext();
  }

  settled(index: number, outcome: RecordOutcome): void {
    this.outcomes[index] = outcome;
    this.unwritten.push(index);
    if (!this.writing && this.unwritten.length >= this.part) void this.writeUnwritten();
  }

  /** Takes the outcomes that were not handed over one by one (settled) to be written at the end. */
  collect(outcomes: RecordOutcome[]): void {
    for (let index = 0; index < outcomes.length; index++) {
      if (this.outcomes[index] === undefined) {
        this.outcomes[index] = outcomes[index] as RecordOutcome;
        this.unwritten.push(index);
      }
    }
  }

  /** Writes the outcomes known and not yet written, in one statement. */
  writeUnwritten(): Promise<void> {
    const indexes = this.unwritten;
    if (indexes.length === 0) return this.queue;
    this.unwritten = [];
    this.writing = true;
    return this.run(async () => {
      const started = performance.now();
      const { keys, errors, results, tally } = outcomeColumns(this.rows, this.outcomes, indexes, this.request);
      // the keys' own range (in claim order, whatever order their records ended in): the join
      // then reads the rows it writes, not the whole chunk's
      const [lowest, highest] = this.keyRange(indexes);
      const { rows: written } = await this.client.query<{ written: number }>({
        name: `${this.sql.statementPrefix}:write-outcomes`,
        text: this.sql.writeOutcomes,
        values: [
          asArrayParameter(keys),
          asArrayParameter(errors),
          this.request.runId,
          lowest,
          highest,
          ...results.map(asArrayParameter),
        ],
      });
      if (written[0]?.written !== indexes.length) {
        throw new Error(
          `slice of run ${this.request.runId} wrote ${written[0]?.written ?? 0} of ${indexes.length} outcomes`,
        );
      }
      this.written += indexes.length;
      for (const key of ["completed", "failed", "retryable", "retriedFromThisRun"] as const) {
        this.tally[key] += tally[key];
      }
      for (const error of errors) if (error !== null) this.messages.push(error);
      this.writeMs += performance.now() - started;
    }).finally(() => {
      this.writing = false;
    });
  }

  /** Writes the rest of the outcomes of `done` records, then the errors and the counters. */
  async finish(done: number): Promise<{ status: string; chunkLastId: number } | undefined> {
    await this.settle();
    await this.writeUnwritten();
    await this.settle();
    if (this.written !== done) {
      throw new Error(`slice of run ${this.request.runId} wrote ${this.written} of ${done} outcomes`);
    }
    const started = performance.now();
    const { request, tally } = this;
    if (this.messages.length > 0) {
      await this.client.query({ name: "count-errors", text: COUNT_ERRORS, values: [request.runId, this.messages] });
    }
    const { rows: run } = await this.client.query<{ status: string; chunkLastId: number }>({
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
    this.writeMs += performance.now() - started;
    return run[0];
  }

  /** Waits for the statements under way, so that the transaction can end; rejects if one failed. */
  async settle(): Promise<void> {
    await this.queue;
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * Runs one slice; undefined when nothing was left to claim. `processRecords` returns outcomes
 * for a prefix of the records it is given (which grow as `feed` claims more, with a `part`); the
 * rest are released unwritten at commit.
 */
export async function runSlice(
  client: PoolClient,
  request: SliceRequest,
  processRecords: (records: ClaimedRow[], feed: RecordFeed) => Promise<RecordOutcome[]>,
): Promise<SliceResult | undefined> {
  const setup = [
    `SET LOCAL statement_timeout = ${Math.ceil(request.statementTimeoutMs)}`,
    `SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(request.idleTimeoutMs)}`,
  ];
  return inTransaction(
    client,
    async () => {
      const slice = new SliceTransaction(client, request);
      await slice.claimNext();
      await slice.settle();
      if (slice.rows.length === 0) return undefined;
      let outcomes: RecordOutcome[];
      try {
        outcomes = await processRecords(slice.rows, slice);
      } finally {
        // a statement under way ends before the transaction does
        await slice.settle();
      }
      const done = outcomes.length;
      slice.collect(outcomes);
      const result = {
        claimed: slice.rows.length,
        done,
        lastProcessedId: done > 0 ? ((slice.rows[done - 1] as ClaimedRow)[request.job.key] as number) : request.afterId,
        completed: 0,
        failed: 0,
        retryable: 0,
        runStatus: "running",
        chunkLastId: request.lastId,
        claimMs: slice.claimMs,
        writeMs: 0,
      };
      if (done === 0) return result;
      const run = await slice.finish(done);
      if (!run) {
        throw new ChunkEndedError(
          `chunk ${request.chunkNo} of round ${request.round} of batch run ${request.runId} ended while a slice ran`,
        );
      }
      return {
        ...result,
        completed: slice.tally.completed,
        failed: slice.tally.failed,
        retryable: slice.tally.retryable,
        runStatus: run.status,
        chunkLastId: run.chunkLastId,
        writeMs: slice.writeMs,
      };
    },
    setup,
  );
}
