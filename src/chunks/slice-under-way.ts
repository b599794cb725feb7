import type { WithClient } from "../db/pool";
import type { ClaimedRows } from "../jobs/claimed-rows";
import type { JobDefinition } from "../jobs/define";
import { type FaultSettings, withInjectedFaults } from "../processing/fault-injection";
import { processRecords, type RecordFeed, type RecordFunction, type RecordSlots } from "../processing/process-records";
import type { RateLimiters, TokenSource } from "../processing/rate-limit";
import type { Prepaid, SliceTokens } from "../processing/token-wait";
import type { ChunkRange, RunSubset } from "../runs/model";
import { type SliceRequest, type SliceResult, workSlice } from "./slice";
import type { SliceSizer } from "./slice-sizer";

/** Of the lock bound, how long after its first claim a slice starts records. */
export const SLICE_START_SHARE = 0.75;
/**
 * Of the lock bound, when a slice commits the records that ended, whatever still runs: the rest
 * is for its last writes and its commit. Later than SLICE_START_SHARE, so that no record
 * starts once the slice has committed.
 */
export const SLICE_COMMIT_SHARE = 0.875;

/** A job as this worker runs its records: its function, and the worker's settings over the job's defaults. */
export interface JobOnWorker {
  job: JobDefinition;
  logic: RecordFunction;
  concurrency: number;
  timeoutMs: number;
  tokens: TokenSource | undefined;
  /** How long a slice may keep its rows locked, from its first claim to its commit. */
  lockHoldMs: number;
  /** After each slice, how many times the time its statements took the chunk pauses. */
  pauseRatio: number;
}

/**
 * ROW_CONCURRENCY, ROW_TIMEOUT_S, MAX_LOCK_HOLD_S and SLICE_PAUSE_RATIO where the worker's
 * environment sets them, else the job's defaults; the job's rate limiter in this process.
 */
export function jobOnWorker(
  worker: {
    faults: FaultSettings;
    rowConcurrency: number | undefined;
    rowTimeoutMs: number | undefined;
    maxLockHoldMs?: number;
    slicePauseRatio?: number;
    rateLimiters?: RateLimiters;
  },
  job: JobDefinition,
): JobOnWorker {
  return {
    job,
    logic: withInjectedFaults(job.process, job.key, worker.faults),
    concurrency: worker.rowConcurrency ?? job.defaults.rowConcurrency,
    timeoutMs: worker.rowTimeoutMs ?? job.defaults.rowTimeoutMs,
    tokens: worker.rateLimiters?.of(job),
    lockHoldMs: worker.maxLockHoldMs ?? job.defaults.maxLockHoldMs,
    pauseRatio: worker.slicePauseRatio ?? job.defaults.slicePauseRatio,
  };
}

/** What a chunk's slices share: its run, its range, its slots, its sizer and its tokens. */
export interface ChunkSlices {
  db: WithClient;
  job: JobOnWorker;
  ref: { runId: number; round: number; chunkNo: number };
  /** The run's parameters, parsed by the job's schema. */
  params: Record<string, unknown>;
  /** The chunk's range; its end moves down when the chunk gives part of it away. */
  range: ChunkRange;
  maxAttempts: number;
  /** The run's subset of the job's rows, if it has one. */
  subset: RunSubset | undefined;
  statementTimeoutMs: number;
  /** A graceful shutdown: no new record starts. */
  draining: AbortSignal;
  /** The shutdown grace ran out: records in flight are abandoned. */
  abort: AbortSignal;
  slots: RecordSlots;
  sizer: SliceSizer;
  tokens: SliceTokens;
}

/**
 * A slice under way: its result, and when it has claimed all it will (for the next to start).
 * Started with the rows after `afterId`, as many as the sizer says, once its tokens are at hand.
 */
export class SliceUnderWay {
  /** When its tokens were at hand: its pace is its records', not the rate limit's. */
  started = performance.now();
  readonly limit: number;
  readonly result: Promise<SliceResult | undefined>;
  /** Resolves with the last key claimed once the slice has claimed its whole limit; never otherwise. */
  private readonly claimedAll: Promise<bigint>;
  private stopped = false;

  constructor(chunk: ChunkSlices, afterId: bigint | undefined) {
    let claimedAll: (lastKey: bigint) => void = () => undefined;
    this.claimedAll = new Promise((resolve) => {
      claimedAll = resolve;
    });
    const { job, ref, range, sizer } = chunk;
    this.limit = sizer.limit;
    const part = sizer.part();
    const request: SliceRequest = {
      job: job.job,
      runId: ref.runId,
      round: ref.round,
      chunkNo: ref.chunkNo,
      firstId: range.firstId,
      lastId: range.lastId,
      afterId,
      limit: this.limit,
      part,
      onClaimedAll: part === undefined ? undefined : (lastKey) => claimedAll(lastKey),
      maxAttempts: chunk.maxAttempts,
      subset: chunk.subset,
      plannedAt: range.plannedAt,
      statementTimeoutMs: chunk.statementTimeoutMs,
      // a slice started ahead waits, after its first claim, for the records of the one before it
      idleTimeoutMs: job.lockHoldMs + 2 * job.timeoutMs + chunk.statementTimeoutMs,
      commitWithinMs: SLICE_COMMIT_SHARE * job.lockHoldMs,
    };
    const wanted = () => !this.stopped && !chunk.draining.aborted && !chunk.abort.aborted;
    this.result = chunk.tokens.withTokens(this.limit, wanted, (limit, prepaid, waitSeconds) => {
      this.started = performance.now();
      request.limit = limit;
      request.tokenWaitSeconds = waitSeconds;
      return chunk.db((client) =>
        workSlice(client, request, (records, feed, lockedAt) =>
          this.processWithinBudget(chunk, records, feed, lockedAt, prepaid),
        ),
      );
    });
    // A slice started ahead can fail before the loop awaits it (an abort fails both slices at
    // once, and its rollback may end first): not an unhandled rejection, which ends the process.
    // Every slice is still awaited, its error thrown there or, in the end, dropped.
    this.result.catch(() => undefined);
  }

  /** The last key claimed once the slice has claimed its whole limit; undefined once it ended without. */
  claimedAllOrEnded(): Promise<bigint | undefined> {
    const ended = () => undefined;
    return Promise.race([this.claimedAll, this.result.then(ended, ended)]);
  }

  /** No further record of the slice starts; it writes and commits those that ran. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Runs the slice's records in the chunk's slots, starting none once SLICE_START_SHARE of the
   * lock bound has passed since the slice's first claim (`lockedAt`), once the worker drains, or
   * once the slice is told to stop.
   */
  private processWithinBudget(
    chunk: ChunkSlices,
    rows: ClaimedRows,
    feed: RecordFeed,
    lockedAt: number,
    prepaid: Prepaid | undefined,
  ) {
    const { job } = chunk;
    const startBy = lockedAt + SLICE_START_SHARE * job.lockHoldMs;
    return processRecords(rows, job.logic, {
      runId: chunk.ref.runId,
      params: chunk.params,
      concurrency: job.concurrency,
      timeoutMs: job.timeoutMs,
      signal: chunk.abort,
      mayStart: () => !chunk.draining.aborted && !this.stopped && performance.now() < startBy,
      feed,
      slots: chunk.slots,
      tokens: job.tokens,
      prepaid,
    });
  }
}
