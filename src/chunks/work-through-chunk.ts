import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import type { ThrottleGate, ThrottleObserver } from "../health/gate";
import type { JobCatalog } from "../jobs/catalog";
import type { ClaimedRows } from "../jobs/claimed-rows";
import type { JobDefinition } from "../jobs/define";
import { type FaultSettings, withInjectedFaults } from "../processing/fault-injection";
import type { RateLimiters, TokenSource } from "../processing/rate-limit";
import { type RecordFeed, type RecordFunction, RecordSlots, runRecords } from "../processing/run-records";
import { clearRowsHeld, countLeftInRange, recordRowsHeld, waitForRowsHeld } from "../runs/chunks";
import type { RunStatus } from "../runs/model";
import { addRateLimitWait } from "../runs/runs";
import { beginChunk } from "./chunk-start";
import {
  ChunkEndedError,
  type LateRecords,
  runSlice,
  type SliceRequest,
  type SliceResult,
  writeLateOutcomes,
} from "./slice";
import { pauseAfterSlice } from "./slice-pause";

/**
 * Works through one chunk (an id range of a run's round) slice by slice. A slice's rows stay
 * locked from its first claim to its commit, and an application transaction that updates one
 * waits that long: slices are sized to take half the job's lock bound (maxLockHoldMs), so
 * transactions stay short and progress shows while a chunk runs whatever the business logic costs.
 */

/** What a slice is sized to take, of the lock bound: the rest absorbs a slower slice than the last. */
export const SLICE_TARGET_SHARE = 0.5;
/** Of the lock bound, how long after its first claim a slice starts records. */
export const SLICE_START_SHARE = 0.75;
/**
 * Of the lock bound, when a slice commits the records that ended, whatever still runs: the rest
 * is for its last writes and its commit. Later than SLICE_START_SHARE, so that no record
 * starts once the slice has committed.
 */
export const SLICE_COMMIT_SHARE = 0.875;
export const MAX_SLICE_ROWS = 5000;
export const STREAM_FROM_RECORD_MS = 1;

/** Run statuses under which a chunk that has started goes on. */
const KEEPS_RUNNING = new Set(["running", "paused"]);

export interface ChunkRef {
  runId: number;
  round: number;
  chunkNo: number;
}

/** Where a job's slices settled: their rows, and a record's time in flight. */
export interface SettledSlices {
  rows: number;
  recordMs: number;
}

/** A committed slice, as reported for metrics. */
export interface SliceReport {
  job: string;
  completed: number;
  failed: number;
  retryable: number;
  claimSeconds: number;
  writeSeconds: number;
}

/** What a chunk reports as it goes, for metrics. */
export interface ChunkObserver extends Partial<ThrottleObserver> {
  sliceCommitted(slice: SliceReport): void;
  /** A chunk of `job` paused after a slice (SLICE_PAUSE_RATIO) for `seconds`. */
  slicePaused?(job: string, seconds: number): void;
  /**
   * Rows of a chunk that another session keeps locked changed by `change`: found after the
   * chunk's passes over its range (it waits on them), or released, or left when it ended.
   */
  rowsHeldElsewhere?(job: string, change: number): void;
  /** A chunk ended its attempt over rows another session kept locked; graphile-worker retries it. */
  heldRowsGaveUp?(job: string): void;
  /** outcome: finished, handed-back, stopped, skipped or error; job: "" when the chunk never started */
  chunkEnded(job: string, outcome: string, seconds: number): void;
}

export interface ChunkDeps {
  db: WithClient;
  logger: Logger;
  /** The jobs this worker runs; a chunk runs its run's. */
  jobs: JobCatalog;
  /** Latency and failures added to every record (PROCESS_DELAY_MS, FAIL_RATE), for demos and tests. */
  faults: FaultSettings;
  worker: string;
  /** ROW_CONCURRENCY, ROW_TIMEOUT_S and MAX_LOCK_HOLD_S where the worker's environment sets them; else the job's defaults. */
  rowConcurrency: number | undefined;
  rowTimeoutMs: number | undefined;
  maxLockHoldMs?: number;
  /** SLICE_PAUSE_RATIO where the worker's environment sets it; else the job's default. */
  slicePauseRatio?: number;
  statementTimeoutMs: number;
  /** Whether a chunk that has finished splits the round's largest running one when none waits (chunk-split.ts). */
  splitWhenIdle: boolean;
  /** Set when the worker begins a graceful shutdown: no new record starts, the chunk is handed back. */
  draining: AbortSignal;
  /** Set when the shutdown grace runs out: records in flight are abandoned and rolled back. */
  abort: AbortSignal;
  /**
   * How each job's slices settled in this worker's chunks, by job name: a chunk starts there
   * rather than at one wave of records, doubling (which costs a no-I/O job a tenth of its pace
   * in the slices of each chunk's ramp), and claims a part at a time from its first slice when
   * its records wait on I/O. Without it every chunk starts small.
   */
  settledSlices?: Map<string, SettledSlices>;
  observer?: ChunkObserver;
  /** The process's rate limiters: a record of a job with a limit waits for a token before it starts. */
  rateLimiters?: RateLimiters;
  /** Holds slices back from claiming while the database's health is over the job's limits; none: never. */
  throttle?: ThrottleGate;
}

export interface ChunkTotals {
  slices: number;
  /** Rows that got an outcome: completed, failed or retryable. */
  done: number;
  completed: number;
  failed: number;
  retryable: number;
}

export type ChunkOutcome =
  /** sliceRows: the size its slices settled on, about half the lock bound's worth of its records. */
  | { kind: "finished"; totals: ChunkTotals; sliceRows: number }
  /** The worker is shutting down; the chunk's remaining rows are untouched and still claimable. */
  | { kind: "handed-back"; totals: ChunkTotals }
  /** The run is not running: paused before the chunk started (it waits for the resume), or cancelling. */
  | { kind: "stopped"; runStatus: RunStatus; totals: ChunkTotals }
  /** The chunk had already ended, or another job ended it meanwhile: a repeated job. */
  | { kind: "skipped" };

/** Another transaction still holds rows of the range; graphile-worker retries the chunk later. */
export class RowsHeldElsewhereError extends Error {
  override name = "RowsHeldElsewhereError";
}

/**
 * The next slice's size, from how the last one went: unchanged when it found fewer rows than
 * it asked for (the range ran out), else what would have taken `targetMs` at its pace,
 * changing at most twofold, and never under one wave of concurrent records.
 */
export function nextSliceLimit(
  limit: number,
  slice: { claimed: number; done: number },
  elapsedMs: number,
  floor: number,
  targetMs: number,
): number {
  if (slice.claimed < limit) return limit;
  const ideal = Math.round((slice.done * targetMs) / Math.max(elapsedMs, 1));
  const bounded = Math.min(Math.max(ideal, Math.floor(limit / 2)), limit * 2);
  return Math.min(Math.max(bounded, floor), MAX_SLICE_ROWS);
}

/** How a chunk of a job runs its records on this worker. */
interface RecordRunner {
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

function recordRunner(deps: ChunkDeps, job: JobDefinition): RecordRunner {
  return {
    job,
    logic: withInjectedFaults(job.process, job.key, deps.faults),
    concurrency: deps.rowConcurrency ?? job.defaults.rowConcurrency,
    timeoutMs: deps.rowTimeoutMs ?? job.defaults.rowTimeoutMs,
    tokens: deps.rateLimiters?.of(job),
    lockHoldMs: deps.maxLockHoldMs ?? job.defaults.maxLockHoldMs,
    pauseRatio: deps.slicePauseRatio ?? job.defaults.slicePauseRatio,
  };
}

/**
 * Runs a slice's records in the chunk's slots, starting none once SLICE_START_SHARE of the lock
 * bound has passed since the slice's first claim (`lockedAt`), once the worker drains, or once
 * the slice is told to stop.
 */
function runWithinBudget(
  deps: ChunkDeps,
  runner: RecordRunner,
  ref: ChunkRef,
  slots: RecordSlots,
  stopped: () => boolean,
  rows: ClaimedRows,
  feed: RecordFeed,
  lockedAt: number,
  prepaid: { left: number } | undefined,
) {
  const startBy = lockedAt + SLICE_START_SHARE * runner.lockHoldMs;
  return runRecords(rows, runner.logic, {
    runId: ref.runId,
    concurrency: runner.concurrency,
    timeoutMs: runner.timeoutMs,
    signal: deps.abort,
    mayStart: () => !deps.draining.aborted && !stopped() && performance.now() < startBy,
    feed,
    slots,
    tokens: runner.tokens,
    prepaid,
  });
}

/**
 * Runs a slice of at most `most` rows once tokens of the job's rate limit are at hand for some
 * (without a limit, at once, of `most`): it claims only as many rows as it holds tokens, so its
 * records never wait for one with their rows locked, and the wait is the slice's, before its
 * claim. Tokens its records did not use go back. Undefined, like a slice that found no rows,
 * when `wanted` says it will not run after all; its wait then goes to `waited`.
 */
async function withTokens(
  tokens: TokenSource | undefined,
  most: number,
  wanted: () => boolean,
  slice: (
    limit: number,
    prepaid: { left: number } | undefined,
    waitedSeconds: number,
  ) => Promise<SliceResult | undefined>,
  waited: (seconds: number) => void,
): Promise<SliceResult | undefined> {
  if (!tokens) return slice(most, undefined, 0);
  const asked = performance.now();
  const taken = tokens.take(most, wanted);
  const granted = typeof taken === "number" ? taken : await taken;
  const waitedSeconds = (performance.now() - asked) / 1000;
  if (granted === 0) {
    waited(waitedSeconds);
    return undefined;
  }
  const prepaid = { left: granted };
  try {
    return await slice(granted, prepaid, waitedSeconds);
  } finally {
    // the slice found fewer rows than it held tokens for, or stopped starting records
    tokens.giveBack(prepaid.left);
    prepaid.left = 0;
  }
}

/**
 * Rows a slice claims at a time once its records wait on I/O (a record's time in flight at least
 * STREAM_FROM_RECORD_MS): the next part while the records of those before run, so records in
 * flight do not wait for a whole slice's claim and write. Records that take no time would only
 * pay for more statements: their slices are claimed and written whole.
 */
export function slicePart(limit: number, concurrency: number, recordMs: number): number | undefined {
  if (recordMs < STREAM_FROM_RECORD_MS) return undefined;
  return Math.max(4 * concurrency, Math.ceil(limit / 8));
}

const noKey = () => undefined;

/** Works through the chunk's rows, and reports how long it took and how it ended (for metrics). */
export async function workThroughChunk(deps: ChunkDeps, ref: ChunkRef): Promise<ChunkOutcome> {
  const began = performance.now();
  const started = { job: "" };
  let ended = "error";
  try {
    const outcome = await runSlices(deps, ref, started);
    ended = outcome.kind;
    return outcome;
  } finally {
    deps.observer?.chunkEnded(started.job, ended, (performance.now() - began) / 1000);
  }
}

/** A slice under way: its result, and when it has claimed all it will (for the next to start). */
interface SliceUnderWay {
  readonly started: number;
  limit: number;
  result: Promise<SliceResult | undefined>;
  /** Resolves with the last key claimed once the slice has claimed its whole limit; never otherwise. */
  claimedAll: Promise<bigint>;
  /** No further record of the slice starts; it writes and commits those that ran. */
  stop(): void;
}

/**
 * Starts the chunk, then runs its slices until its range is done, the worker drains, the run
 * stops it, or another job ends it. A slice whose records wait on I/O (it claims a part at a
 * time) starts the next once it has claimed all its rows: the next claims its first part while
 * this one's last records run, and its records take the slots as they free, so the chunk's
 * records in flight do not drain while a slice writes its last outcomes and commits. The two
 * are two transactions on two connections; at most two slices of a chunk are under way.
 */
async function runSlices(deps: ChunkDeps, ref: ChunkRef, started: { job: string }): Promise<ChunkOutcome> {
  const start = await deps.db((client) => beginChunk(client, ref, deps.worker));
  const totals: ChunkTotals = { slices: 0, done: 0, completed: 0, failed: 0, retryable: 0 };
  if (start.kind === "stopped") return { kind: "stopped", runStatus: start.runStatus, totals };
  if (start.kind === "ended") return { kind: "skipped" };

  const { chunk, settings } = start;
  // the chunk's range; its end moves down when the chunk gives part of it away
  const range = { ...chunk };
  started.job = start.job;
  const runner = recordRunner(deps, deps.jobs.get(start.job));
  const { job } = runner;
  const log = deps.logger.child({
    job: job.name,
    run: ref.runId,
    round: ref.round,
    chunk: ref.chunkNo,
    ids: [chunk.firstId, chunk.lastId],
  });
  const floor = Math.min(runner.concurrency, MAX_SLICE_ROWS);
  const began = performance.now();
  const slots = new RecordSlots(runner.concurrency);
  // the last key the chunk's slices have processed: none yet
  let afterId: bigint | undefined;
  const settled = deps.settledSlices?.get(job.name);
  let limit = settled?.rows ?? Math.min(Math.max(4 * runner.concurrency, 100), MAX_SLICE_ROWS);
  const countLeft = () => deps.db((client) => countLeftInRange(client, job, range, settings.maxAttempts));
  let left = 0;
  let rescanned = false;
  let waited = false;
  // rows the chunk had processed when its last pass over the range began
  let doneBeforePass = 0;
  let recordMs = settled?.recordMs ?? 0;
  // when the last slice ended: a slice that started before it counts its time from there
  let lastEnded = began;
  // seconds the chunk's slices waited for tokens that the run's total has not counted yet
  let uncountedWait = 0;
  // rows this chunk waits on, held by another session, as the metrics have them
  let heldShown = 0;
  const showHeld = (rows: number) => {
    if (rows !== heldShown) deps.observer?.rowsHeldElsewhere?.(job.name, rows - heldShown);
    heldShown = rows;
  };

  const beginSlice = (from: bigint | undefined): SliceUnderWay => {
    let stopped = false;
    let claimedAll: (lastKey: bigint) => void = () => undefined;
    const part = slicePart(limit, runner.concurrency, recordMs);
    const request: SliceRequest = {
      job,
      runId: ref.runId,
      round: ref.round,
      chunkNo: ref.chunkNo,
      firstId: range.firstId,
      lastId: range.lastId,
      afterId: from,
      limit,
      part,
      onClaimedAll: part === undefined ? undefined : (lastKey) => claimedAll(lastKey),
      maxAttempts: settings.maxAttempts,
      plannedAt: chunk.plannedAt,
      statementTimeoutMs: deps.statementTimeoutMs,
      // a slice started ahead waits, after its first claim, for the records of the one before it
      idleTimeoutMs: runner.lockHoldMs + 2 * runner.timeoutMs + deps.statementTimeoutMs,
      commitWithinMs: SLICE_COMMIT_SHARE * runner.lockHoldMs,
    };
    const wanted = () => !stopped && !deps.draining.aborted && !deps.abort.aborted;
    // from when its tokens were at hand: its pace is its records', not the rate limit's
    let started = performance.now();
    const result = withTokens(
      runner.tokens,
      limit,
      wanted,
      async (tokenLimit, prepaid, waitedSeconds) => {
        started = performance.now();
        request.limit = tokenLimit;
        // the wait goes to the run with this slice's counters, or back to the chunk's uncounted
        request.tokenWaitSeconds = uncountedWait + waitedSeconds;
        uncountedWait = 0;
        let counted = 0;
        try {
          const slice = await deps.db((client) =>
            runSlice(client, request, (records, feed, lockedAt) =>
              runWithinBudget(deps, runner, ref, slots, () => stopped, records, feed, lockedAt, prepaid),
            ),
          );
          counted = slice?.waitCounted ?? 0;
          return slice;
        } finally {
          uncountedWait += request.tokenWaitSeconds - counted;
        }
      },
      (seconds) => {
        uncountedWait += seconds;
      },
    );
    // A slice started ahead can fail before the loop awaits it (an abort fails both slices at
    // once, and its rollback may end first): not an unhandled rejection, which ends the process.
    // Every slice is still awaited, its error thrown there or, in the end, dropped.
    result.catch(() => undefined);
    return {
      get started() {
        return started;
      },
      limit,
      claimedAll: new Promise((resolve) => {
        claimedAll = resolve;
      }),
      result,
      stop: () => {
        stopped = true;
      },
    };
  };

  const count = (slice: { completed: number; failed: number; retryable: number }) => {
    totals.done += slice.completed + slice.failed + slice.retryable;
    totals.completed += slice.completed;
    totals.failed += slice.failed;
    totals.retryable += slice.retryable;
  };
  // the records that ran past their slice's commit, written apart as they end
  const lateWrites: Promise<void>[] = [];
  const writeLate = async (late: LateRecords) => {
    for (let ended = await late.next(); ended; ended = await late.next()) {
      const { rows, outcomes } = ended;
      const started = performance.now();
      const written = await deps.db((client) => writeLateOutcomes(client, late.request, rows, outcomes));
      count(written);
      deps.observer?.sliceCommitted({
        job: job.name,
        ...written,
        claimSeconds: 0,
        writeSeconds: (performance.now() - started) / 1000,
      });
    }
  };
  /** Waits for the records still running apart to end and be written: until then their rows are still claimable. */
  const lateWritten = async () => {
    const writes = lateWrites.splice(0);
    await Promise.all(writes);
  };

  let current: SliceUnderWay | undefined;
  let next: SliceUnderWay | undefined;
  try {
    for (;;) {
      if (deps.draining.aborted) {
        log.info({ ...totals }, "worker shutting down: chunk handed back");
        return { kind: "handed-back", totals };
      }
      if (!current && deps.throttle) {
        const { db, worker, draining, abort, observer } = deps;
        const runId = ref.runId;
        const stoppedAs = await deps.throttle.pass({
          db,
          worker,
          draining,
          abort,
          observer,
          job,
          runId,
          log,
          keepsRunning: KEEPS_RUNNING,
        });
        if (stoppedAs) return { kind: "stopped", runStatus: stoppedAs as RunStatus, totals };
        if (deps.draining.aborted) continue;
      }
      current ??= beginSlice(afterId);
      const claimedUpTo = await Promise.race([current.claimedAll, current.result.then(noKey, noKey)]);
      // a chunk that pauses after each slice starts none ahead: the pause is its database's idle time
      const mayClaim = (deps.throttle?.mayClaim(job) ?? true) && runner.pauseRatio === 0;
      if (claimedUpTo !== undefined && !deps.draining.aborted && mayClaim) next = beginSlice(claimedUpTo);
      let slice: SliceResult | undefined;
      try {
        slice = await current.result;
      } catch (error) {
        if (error instanceof ChunkEndedError) {
          log.warn({ ...totals }, "another job ended the chunk: slice rolled back");
          return { kind: "skipped" };
        }
        if (!deps.abort.aborted) throw error;
        log.warn({ ...totals }, "shutdown grace ran out: slice rolled back, chunk handed back");
        return { kind: "handed-back", totals };
      }
      const { started: sliceStart, limit: sliceLimit } = current;
      current = next;
      next = undefined;
      if (!slice) {
        await lateWritten();
        left = await countLeft();
        if (left === 0) break;
        // a pass that processed rows may have passed over some that a slice claimed and stopped
        // before starting (its lock bound came first: its records ran past it, or waited for a
        // rate limit's tokens): those are free again, and another pass takes them as a first
        // rescan would
        if (totals.done > doneBeforePass) rescanned = waited = false;
        doneBeforePass = totals.done;
        if (waited) break;
        if (rescanned) {
          // still held after a second pass: wait for their holder (another chunk's slice, which
          // claimed them before this chunk was split from it) to end, then one last pass
          waited = true;
          const held = await deps.db((client) => recordRowsHeld(client, job, ref, range, settings.maxAttempts));
          if (held) log.warn({ ...held }, "rows held by another session: waiting for it to end its transaction");
          showHeld(held?.rows ?? 0);
          const waitMs = runner.lockHoldMs + runner.timeoutMs;
          const released = await deps.db((client) => waitForRowsHeld(client, job, range, settings.maxAttempts, waitMs));
          if (!released) break;
          showHeld(0);
          if (held) await deps.db((client) => clearRowsHeld(client, ref));
        }
        // rows skipped while another transaction held them: one more pass takes those released since
        rescanned = true;
        afterId = undefined;
        continue;
      }
      if (slice.late) {
        // its writes fail the chunk, if they do, where it waits for them; never unhandled
        const writing = writeLate(slice.late);
        writing.catch(() => undefined);
        lateWrites.push(writing);
        log.debug({ running: slice.late.count, limit: sliceLimit }, "slice committed at its lock bound");
      }
      // the rows of records still running apart are past where the next slice claims
      afterId = slice.lastProcessedId;
      if (slice.done === 0) {
        if (slice.late) limit = Math.max(Math.floor(sliceLimit / 2), floor);
        continue;
      }
      const now = performance.now();
      const elapsedMs = now - Math.max(sliceStart, lastEnded);
      lastEnded = now;
      totals.slices++;
      count(slice);
      // another job took the upper part of the range (chunk-split.ts): stop where it starts
      if (slice.chunkLastId < range.lastId) range.lastId = slice.chunkLastId;
      deps.observer?.sliceCommitted({
        job: job.name,
        completed: slice.completed,
        failed: slice.failed,
        retryable: slice.retryable,
        claimSeconds: slice.claimMs / 1000,
        writeSeconds: slice.writeMs / 1000,
      });
      log.debug({ rows: slice.done, limit: sliceLimit, ms: Math.round(now - sliceStart) }, "slice committed");
      // a pause lets running chunks finish; a cancel stops them here
      if (!KEEPS_RUNNING.has(slice.runStatus))
        return { kind: "stopped", runStatus: slice.runStatus as RunStatus, totals };
      // a record's time in flight, from the slice's time the claim and the writes did not take
      recordMs = ((elapsedMs - slice.claimMs - slice.writeMs) * runner.concurrency) / slice.done;
      limit = nextSliceLimit(sliceLimit, slice, elapsedMs, floor, SLICE_TARGET_SHARE * runner.lockHoldMs);
      deps.settledSlices?.set(job.name, { rows: limit, recordMs });
      if (runner.pauseRatio > 0) {
        const pausedAt = performance.now();
        const { db, draining } = deps;
        // the database's time, not the slice's: records waiting on I/O leave it idle already
        const ms = runner.pauseRatio * (slice.claimMs + slice.writeMs);
        const stoppedAs = await pauseAfterSlice({
          db,
          runId: ref.runId,
          ms,
          signal: draining,
          keepsRunning: KEEPS_RUNNING,
        });
        deps.observer?.slicePaused?.(job.name, (performance.now() - pausedAt) / 1000);
        // the next slice's time counts from the pause's end
        lastEnded = performance.now();
        if (stoppedAs) return { kind: "stopped", runStatus: stoppedAs as RunStatus, totals };
      }
    }
  } finally {
    // a slice started ahead of one that ended the chunk's work stops starting records, and ends
    for (const underWay of [current, next]) {
      underWay?.stop();
      await underWay?.result.catch(() => undefined);
    }
    // a chunk that ends otherwise leaves a late outcome it could not write claimable
    await Promise.allSettled(lateWrites);
    showHeld(0);
    if (uncountedWait > 0) {
      const seconds = uncountedWait;
      await deps
        .db((client) => addRateLimitWait(client, ref.runId, seconds))
        .catch((error: unknown) =>
          log.warn({ err: error, seconds }, "could not add the chunk's wait for tokens to its run"),
        );
    }
  }

  if (left > 0) {
    deps.observer?.heldRowsGaveUp?.(job.name);
    throw new RowsHeldElsewhereError(
      `${left} rows of ids ${range.firstId}-${range.lastId} are held by another transaction`,
    );
  }
  // one of many in a run: its progress shows the same at a glance
  log.debug({ ...totals, ms: Math.round(performance.now() - began) }, "chunk processed");
  return { kind: "finished", totals, sliceRows: limit };
}
