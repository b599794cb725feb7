import type { PoolClient } from "pg";
import { copyOutRows } from "../db/copy-out";
import { plainArrayLiteral } from "../db/literals";
import { inTransaction } from "../db/pool";
import { ClaimedRows } from "../jobs/claimed-rows";
import type { JobDefinition } from "../jobs/define";
import { jobSql, type SliceBounds } from "../jobs/job-sql";
import { encodeResult, type ResultElement } from "../jobs/results";
import { failedOutcome, type RecordFeed, type RecordOutcome } from "../processing/process-records";
import type { RunSubset } from "../runs/model";
import { countSliceOutcomes, type SliceCounts } from "../runs/slice-counts";
import { isRowValueError, RowValueError, whyRefused } from "./refused-result";

/**
 * One slice of a chunk: a short transaction that claims the next rows of the chunk's id range
 * with FOR UPDATE SKIP LOCKED, runs the business logic on them, and writes every row's outcome
 * together with the chunk's and the run's counters.
 *
 * The claim is the row lock, not a write: claimed rows are never marked `processing`, so a
 * worker that dies leaves nothing behind. Its transaction ends with its connection, the locks
 * go with it, and the rows are still pending for the next worker. Each row is written once.
 */

export interface SliceRequest extends SliceBounds {
  job: JobDefinition;
  runId: number;
  round: number;
  chunkNo: number;
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
  onClaimedAll?: (lastKey: bigint) => void;
  maxAttempts: number;
  /** The run's subset of the job's rows, if it has one: the slice claims only those. */
  subset?: RunSubset;
  /** When the chunk was planned: rows processed since then belong to this round already. */
  plannedAt: Date;
  statementTimeoutMs: number;
  /**
   * Seconds the chunk waited for its rate limit's tokens and no slice has counted yet: the run's
   * total gains them when this slice counts its outcomes (SliceResult.waitCounted).
   */
  tokenWaitSeconds?: number;
  /** Longest the transaction may sit idle while the business logic runs. */
  idleTimeoutMs: number;
  /**
   * How long after its first claim the slice commits at the latest: the outcomes known by then
   * are written, and the records still running are written apart as they end (LateRecords), so
   * that no record holds its neighbours' rows locked. Unset: the slice waits for every record.
   */
  commitWithinMs?: number;
}

export interface SliceResult {
  claimed: number;
  /**
   * Claimed rows whose outcome the slice wrote (completed, failed or retryable): a prefix of
   * them, but for the records still running when the slice committed (`late`); the rows after
   * those that started go back unprocessed at commit.
   */
  done: number;
  /** The highest key processed, or still running apart (the request's afterId when none was). */
  lastProcessedId: bigint | undefined;
  /** The records still running when the slice committed at its lock bound, to be written apart. */
  late?: LateRecords;
  completed: number;
  /** Rows failed for good (no attempts left). */
  failed: number;
  /** Rows failed with attempts left. */
  retryable: number;
  /** The run's status after the slice (a paused or cancelled run stops its chunks). "running"
   *  when nothing was written. */
  runStatus: string;
  /** The chunk's last key after the slice: lower than the request's when another worker took part of the range. */
  chunkLastId: bigint;
  /** Time spent claiming, and writing outcomes and counters (the commit aside). */
  claimMs: number;
  writeMs: number;
  /** Of the request's tokenWaitSeconds, what the run's total gained: all of it, or none. */
  waitCounted: number;
}

/*
 * The job's statements (src/jobs/job-sql.ts). The claim takes rows that are claimable
 * (pending, or failed with attempts left) and not yet processed in this round, walking the key's
 * index through the chunk's range under LockRows, as a COPY whose text the worker decodes in one
 * go (src/db/copy-out.ts). The outcomes are written in one statement; its range bound on the
 * key, the lowest and highest key it writes, keeps the planner from walking the index from its
 * start for every slice, and its join to the rows it writes.
 */

/** The slice's chunk (or its run) ended while the slice ran: another queue job ended it. */
export class ChunkEndedError extends Error {
  override name = "ChunkEndedError";
}

/** What a slice's outcomes add to the counters. */
type Tally = Pick<SliceCounts, "completed" | "failed" | "retryable" | "retriedFromThisRun">;

const addTally = (into: Tally, more: Tally) => {
  for (const key of ["completed", "failed", "retryable", "retriedFromThisRun"] as const) into[key] += more[key];
};

/**
 * The arrays the outcome statement takes (keys, errors, then one per result column), and what
 * the outcomes add to the counters, for the records of `indexes`. A result that does not fit the
 * job's columns (src/jobs/results.ts) is its row's failure: its outcome becomes one.
 */
function outcomeColumns(rows: ClaimedRows, outcomes: RecordOutcome[], indexes: number[], request: SliceRequest) {
  const { writes } = request.job;
  const keys: string[] = [];
  const errors: (string | null)[] = [];
  const results = writes.map(() => [] as ResultElement[]);
  const elements: ResultElement[] = new Array(writes.length);
  const tally: Tally = { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 };
  for (const index of indexes) {
    keys.push(rows.keys[index] as string);
    // only retry rounds take rows this run failed; round 0 counts none even if a clock went back
    if (request.round > 0 && rows.statuses[index] === "failed" && rows.runs[index] === request.runId) {
      tally.retriedFromThisRun++;
    }
    let outcome = outcomes[index] as RecordOutcome;
    if (outcome.status === "completed") {
      const problem = encodeResult(writes, outcome.result, elements);
      if (problem === undefined) {
        tally.completed++;
        errors.push(null);
        for (let column = 0; column < results.length; column++)
          (results[column] as ResultElement[]).push(elements[column] ?? null);
        continue;
      }
      outcome = failedOutcome(problem);
      outcomes[index] = outcome;
    }
    if ((rows.attempts[index] as number) + 1 >= request.maxAttempts) tally.failed++;
    else tally.retryable++;
    errors.push(outcome.error);
    for (const values of results) values.push(null);
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
  /** Records started: they start in key order, so these are the first claimed. */
  startedCount = 0;
  /** Set when the slice commits at its bound: outcomes that come after go to it. */
  private late: LateRecords | undefined;

  constructor(
    private readonly client: PoolClient,
    readonly request: SliceRequest,
    readonly rows = new ClaimedRows(),
  ) {
    this.sql = jobSql(request.job, request);
    this.part = Math.min(request.part ?? request.limit, request.limit);
  }

  /** The lowest and highest key of the rows at `indexes`: rows are claimed in key order. */
  private keyRange(indexes: number[]): [string, string] {
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const index of indexes) {
      if (index < first) first = index;
      if (index > last) last = index;
    }
    return [this.rows.keys[first] as string, this.rows.keys[last] as string];
  }

  /** Runs `statement` after those queued before it, unless one of them failed. */
  private enqueue(statement: () => Promise<void>): Promise<void> {
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
    const claim = this.enqueue(async () => {
      const started = performance.now();
      const last = this.rows.keys.at(-1);
      const wanted = Math.min(this.part, this.request.limit - this.rows.length);
      const claim = this.sql.claimSlice({
        firstId: this.request.firstId,
        lastId: this.request.lastId,
        afterId: last === undefined ? this.request.afterId : BigInt(last),
        maxAttempts: this.request.maxAttempts,
        plannedAt: this.request.plannedAt,
        limit: wanted,
      });
      const claimed = await copyOutRows(this.client, claim, (fields) => this.sql.readClaimedRow(fields, this.rows));
      this.exhausted = claimed < wanted || this.rows.length >= this.request.limit;
      const lastClaimed = this.rows.keys.at(-1);
      if (lastClaimed !== undefined && this.rows.length >= this.request.limit) {
        this.request.onClaimedAll?.(BigInt(lastClaimed));
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
    // rows claimed by a claim under way when the slice committed at its bound stay unstarted
    return this.late === undefined;
  }

  started(index: number): void {
    this.startedCount = Math.max(this.startedCount, index + 1);
    this.late?.add(index);
    if (!this.exhausted && !this.late && this.rows.length - index <= this.part / 2) void this.claimNext();
  }

  settled(index: number, outcome: RecordOutcome): void {
    if (this.late) {
      this.late.settled(index, outcome);
      return;
    }
    this.outcomes[index] = outcome;
    this.unwritten.push(index);
    if (!this.writing && this.unwritten.length >= this.part) void this.writeUnwritten();
  }

  /**
   * Commits at the bound from here on: no further claim, and the records started that have no
   * outcome yet are the returned LateRecords', their outcomes handed to it as they come.
   */
  cut(): LateRecords {
    const running: number[] = [];
    for (let index = 0; index < this.startedCount; index++) if (this.outcomes[index] === undefined) running.push(index);
    this.late = new LateRecords(this.request, this.rows, running);
    this.exhausted = true;
    return this.late;
  }

  /** The indexes of the records whose outcomes this transaction writes. */
  settledIndexes(): number[] {
    const indexes: number[] = [];
    for (let index = 0; index < this.outcomes.length; index++)
      if (this.outcomes[index] !== undefined) indexes.push(index);
    return indexes;
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

  /** Writes the outcomes of the records at `indexes` in one statement, and counts them. */
  async writeOutcomes(indexes: number[]): Promise<void> {
    const started = performance.now();
    const { keys, errors, results, tally } = outcomeColumns(this.rows, this.outcomes, indexes, this.request);
    // the keys' own range (in claim order, whatever order their records ended in): the join
    // then reads the rows it writes, not the whole chunk's
    const [lowest, highest] = this.keyRange(indexes);
    let written: number | undefined;
    try {
      const { rows } = await this.client.query<{ written: number }>({
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
      written = rows[0]?.written;
    } catch (error) {
      // its message may hold the values of every row of the statement: not a row's error to keep
      throw isRowValueError(error) ? new RowValueError("a row's result could not be written", { cause: error }) : error;
    }
    if (written !== indexes.length) {
      throw new Error(`slice of run ${this.request.runId} wrote ${written ?? 0} of ${indexes.length} outcomes`);
    }
    this.written += indexes.length;
    addTally(this.tally, tally);
    for (const error of errors) if (error !== null) this.messages.push(error);
    this.writeMs += performance.now() - started;
  }

  /** Writes the outcomes known and not yet written, in one statement. */
  writeUnwritten(): Promise<void> {
    const indexes = this.unwritten;
    if (indexes.length === 0) return this.queue;
    this.unwritten = [];
    this.writing = true;
    return this.enqueue(() => this.writeOutcomes(indexes)).finally(() => {
      this.writing = false;
    });
  }

  /** Writes the rest of the outcomes of `done` records, then the errors and the counters. */
  async finish(done: number): Promise<{ status: string; chunkLastId: bigint } | undefined> {
    await this.settle();
    await this.writeUnwritten();
    await this.settle();
    if (this.written !== done) {
      throw new Error(`slice of run ${this.request.runId} wrote ${this.written} of ${done} outcomes`);
    }
    return this.countOutcomes(this.request.tokenWaitSeconds ?? 0);
  }

  /**
   * Counts the errors and the outcomes written into the run's and the chunk's counters, and the
   * seconds the chunk waited for tokens (`tokenWaitSeconds`) into the run's.
   */
  async countOutcomes(tokenWaitSeconds = 0): Promise<{ status: string; chunkLastId: bigint } | undefined> {
    const started = performance.now();
    const { request, tally } = this;
    const { runId, round, chunkNo } = request;
    const run = await countSliceOutcomes(this.client, {
      runId,
      round,
      chunkNo,
      ...tally,
      errors: this.messages,
      tokenWaitSeconds,
    });
    this.writeMs += performance.now() - started;
    return run;
  }

  /** Waits for the statements under way, so that the transaction can end; rejects if one failed. */
  async settle(): Promise<void> {
    await this.queue;
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * The records of a slice still running when it committed at its lock bound: their rows were
 * released with the commit, still claimable, and each outcome is written apart as it comes
 * (writeLateOutcomes), its row locked again only for that write.
 */
export class LateRecords {
  private readonly running: Set<number>;
  private ready: { index: number; outcome: RecordOutcome }[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  constructor(
    readonly request: SliceRequest,
    private readonly rows: ClaimedRows,
    indexes: number[],
  ) {
    this.running = new Set(indexes);
  }

  get count(): number {
    return this.running.size + this.ready.length;
  }

  /** A record that started after the slice committed (its caller did not stop it): it ends apart too. */
  add(index: number): void {
    this.running.add(index);
  }

  settled(index: number, outcome: RecordOutcome): void {
    if (!this.running.delete(index)) return;
    this.ready.push({ index, outcome });
    this.wake?.();
  }

  /** The slice's records have all ended (or were abandoned): nothing more comes. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** The outcomes that came since the last call, as rows of their own; undefined once none is to come. */
  async next(): Promise<{ rows: ClaimedRows; outcomes: RecordOutcome[] } | undefined> {
    while (this.ready.length === 0) {
      if (this.running.size === 0 || this.ended) return undefined;
      await new Promise<void>((woken) => {
        this.wake = woken;
      });
      this.wake = undefined;
    }
    // in key order, as a write takes them (SliceTransaction.keyRange)
    const batch = this.ready.sort((a, b) => a.index - b.index);
    this.ready = [];
    return { rows: this.rows.pick(batch.map(({ index }) => index)), outcomes: batch.map(({ outcome }) => outcome) };
  }
}

const sliceSetup = (request: SliceRequest) => [
  `SET LOCAL statement_timeout = ${Math.ceil(request.statementTimeoutMs)}`,
  `SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(request.idleTimeoutMs)}`,
];

/** The run's status and the chunk's last key after a slice counted its outcomes; never undefined. */
function chunkStillOpen(request: SliceRequest, run: { status: string; chunkLastId: bigint } | undefined) {
  if (!run) {
    throw new ChunkEndedError(
      `chunk ${request.chunkNo} of round ${request.round} of batch run ${request.runId} ended while a slice ran`,
    );
  }
  return run;
}

/** What the outcomes a slice's rewrite committed add up to, group by group. */
interface Rewritten {
  tally: Tally;
  run?: { status: string; chunkLastId: bigint };
  /** The slice's wait for tokens, counted by the first group that commits; what none has yet. */
  waitLeft: number;
}

/**
 * Writes the outcomes of `rows` in a transaction of their own, locking the rows again first:
 * those another transaction has taken meanwhile are left to it (and to the chunk's last pass
 * over its range). When the write fails on a row's value, it is rolled back and each half
 * written apart, until the row is alone: it fails with the database's error, of its own values
 * only. Transactions, not savepoints: a subtransaction writing rows its parent locked costs a
 * MultiXact per row, and more than 64 of them slow every snapshot of the server.
 */
async function writeApart(
  client: PoolClient,
  request: SliceRequest,
  rows: ClaimedRows,
  outcomes: RecordOutcome[],
  into: Rewritten,
): Promise<void> {
  const all = (length: number) => Array.from({ length }, (_, index) => index);
  try {
    await inTransaction(
      client,
      async () => {
        const sql = jobSql(request.job, request);
        const { rows: locked } = await client.query<{ key: string }>(sql.relockClaimed, [
          rows.keys,
          request.maxAttempts,
          request.plannedAt,
          ...sql.filterValues,
        ]);
        const ours = new Set(locked.map((row) => row.key));
        const kept = all(rows.length).filter((index) => ours.has(rows.keys[index] as string));
        if (kept.length === 0) return;
        const slice = new SliceTransaction(client, request, rows.pick(kept));
        for (const index of kept) slice.outcomes.push(outcomes[index] as RecordOutcome);
        await slice.writeOutcomes(all(kept.length));
        into.run = chunkStillOpen(request, await slice.countOutcomes(into.waitLeft));
        addTally(into.tally, slice.tally);
      },
      sliceSetup(request),
    );
    // counted with outcomes this transaction committed
    if (into.run) into.waitLeft = 0;
  } catch (error) {
    if (!(error instanceof RowValueError)) throw error;
    if (rows.length > 1) {
      const half = Math.ceil(rows.length / 2);
      const halves = [all(half), all(rows.length).slice(half)];
      for (const indexes of halves) {
        const of = indexes.map((index) => outcomes[index] as RecordOutcome);
        await writeApart(client, request, rows.pick(indexes), of, into);
      }
      return;
    }
    const outcome = outcomes[0] as RecordOutcome;
    const refusal = error.cause as Error;
    if (outcome.status === "failed") {
      throw new Error(
        `row ${rows.keys[0]} of ${request.job.table} cannot be written even as failed: ${refusal.message}`,
      );
    }
    const why = await whyRefused(client, request.job, outcome.result, refusal);
    await writeApart(client, request, rows, [failedOutcome(why)], into);
  }
}

/**
 * The outcomes of a slice whose write failed on a row's value, the slice rolled back: written
 * apart (writeApart), so that the row whose value the database refused fails and no other
 * does. Their records do not run again: their outcomes are known.
 */
async function rewriteOutcomes(
  client: PoolClient,
  request: SliceRequest,
  rolledBack: SliceTransaction,
  late: LateRecords | undefined,
): Promise<SliceResult> {
  const wait = request.tokenWaitSeconds ?? 0;
  const into: Rewritten = { tally: { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 }, waitLeft: wait };
  const started = performance.now();
  const processed = rolledBack.settledIndexes();
  const outcomes = processed.map((index) => rolledBack.outcomes[index] as RecordOutcome);
  await writeApart(client, request, rolledBack.rows.pick(processed), outcomes, into);
  // every row left to others: the run is as it was, and the chunk's range too
  const run = into.run ?? { status: "running", chunkLastId: request.lastId };
  const writeMs = rolledBack.writeMs + performance.now() - started;
  const times = { claimMs: rolledBack.claimMs, writeMs };
  return sliceResult(rolledBack, processed.length, into.tally, run, times, late, wait - into.waitLeft);
}

/**
 * Writes the outcomes of records that ran past their slice's commit (LateRecords), in a
 * transaction of their own that locks their rows again: a row another transaction holds, or
 * that is no longer this round's to write, is left (the chunk's last pass takes it again).
 */
export async function writeLateOutcomes(
  client: PoolClient,
  request: SliceRequest,
  rows: ClaimedRows,
  outcomes: RecordOutcome[],
): Promise<{ completed: number; failed: number; retryable: number }> {
  const into: Rewritten = { tally: { completed: 0, failed: 0, retryable: 0, retriedFromThisRun: 0 }, waitLeft: 0 };
  await writeApart(client, request, rows, outcomes, into);
  const { completed, failed, retryable } = into.tally;
  return { completed, failed, retryable };
}

/** What a slice came to: its rows, those processed and how they were counted, the run's status after. */
function sliceResult(
  slice: SliceTransaction,
  done: number,
  tally: Tally,
  run: { status: string; chunkLastId: bigint },
  times: { claimMs: number; writeMs: number },
  late: LateRecords | undefined,
  waitCounted = 0,
): SliceResult {
  const { rows } = slice;
  const reached = Math.max(slice.startedCount, done);
  return {
    claimed: rows.length,
    done,
    late,
    lastProcessedId: reached === 0 ? slice.request.afterId : BigInt(rows.keys[reached - 1] as string),
    completed: tally.completed,
    failed: tally.failed,
    retryable: tally.retryable,
    runStatus: run.status,
    chunkLastId: run.chunkLastId,
    claimMs: times.claimMs,
    writeMs: times.writeMs,
    waitCounted,
  };
}

/**
 * Runs one slice; undefined when nothing was left to claim. `processRecords` is told when the
 * slice's rows were locked, and returns outcomes for a prefix of the records it is given (which
 * grow as `feed` claims more, with a `part`); the rest are released unwritten at commit. With
 * `commitWithinMs`, the slice commits then at the latest, and the records still running are
 * the result's `late`.
 */
export async function workSlice(
  client: PoolClient,
  request: SliceRequest,
  processRecords: (rows: ClaimedRows, feed: RecordFeed, lockedAt: number) => Promise<RecordOutcome[]>,
): Promise<SliceResult | undefined> {
  let slice: SliceTransaction | undefined;
  let late: LateRecords | undefined;
  try {
    return await inTransaction(
      client,
      async () => {
        const running = new SliceTransaction(client, request);
        slice = running;
        // the slice's rows are locked from its first claim on
        const lockedAt = performance.now();
        await running.claimNext();
        await running.settle();
        if (running.rows.length === 0) return undefined;
        let outcomes: RecordOutcome[] | undefined;
        try {
          outcomes = await untilBound(processRecords(running.rows, running, lockedAt), lockedAt, request, () => {
            late = running.cut();
            return late;
          });
        } finally {
          // a statement under way ends before the transaction does
          await running.settle().catch(() => undefined);
        }
        if (outcomes) running.collect(outcomes);
        const done = running.settledIndexes().length;
        if (done === 0) {
          await running.settle();
          const unchanged = { status: "running", chunkLastId: request.lastId };
          return sliceResult(running, 0, running.tally, unchanged, { claimMs: running.claimMs, writeMs: 0 }, late);
        }
        const run = chunkStillOpen(request, await running.finish(done));
        return sliceResult(running, done, running.tally, run, running, late, request.tokenWaitSeconds);
      },
      sliceSetup(request),
    );
  } catch (error) {
    if (!(error instanceof RowValueError) || slice === undefined) throw error;
    return rewriteOutcomes(client, request, slice, late);
  }
}

/**
 * The records' outcomes, or undefined when the slice's bound (commitWithinMs after its first
 * claim) came first: `cut` is called then, and the records still running end apart.
 */
async function untilBound(
  processing: Promise<RecordOutcome[]>,
  lockedAt: number,
  request: SliceRequest,
  cut: () => LateRecords,
): Promise<RecordOutcome[] | undefined> {
  const { commitWithinMs } = request;
  if (commitWithinMs === undefined) return processing;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<undefined>((reached) => {
    timer = setTimeout(reached, lockedAt + commitWithinMs - performance.now(), undefined);
  });
  try {
    const outcomes = await Promise.race([processing, bound]);
    if (outcomes) return outcomes;
  } finally {
    clearTimeout(timer);
  }
  const late = cut();
  processing.then(
    () => late.end(),
    () => late.end(),
  );
  return undefined;
}
