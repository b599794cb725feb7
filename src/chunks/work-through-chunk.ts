import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import type { ThrottleGate, ThrottleObserver } from "../health/gate";
import type { JobCatalog } from "../jobs/catalog";
import { runParamsFor } from "../jobs/params";
import type { FaultSettings } from "../processing/fault-injection";
import { RecordSlots } from "../processing/process-records";
import type { RateLimiters } from "../processing/rate-limit";
import { SliceTokens } from "../processing/token-wait";
import type { RunStatus } from "../runs/model";
import { beginChunk } from "./chunk-start";
import { type HeldRowsObserver, RangePasses } from "./held-rows";
import { LateWrites } from "./late-writes";
import { ChunkEndedError, type SliceResult } from "./slice";
import { type SlicePacer, SlicePauses } from "./slice-pause";
import { type SettledSlices, SLICE_TARGET_SHARE, SliceSizer } from "./slice-sizer";
import { jobOnWorker, SliceUnderWay } from "./slice-under-way";

/**
 * Works through one chunk (an id range of a run's round) slice by slice. A slice's rows stay
 * locked from its first claim to its commit, and an application transaction that updates one
 * waits that long: slices are sized to take half the job's lock bound (maxLockHoldMs), so
 * transactions stay short and progress shows while a chunk runs whatever the business logic costs.
 */

/** Run statuses under which a chunk that has started goes on. */
const KEEPS_RUNNING = new Set(["running", "paused"]);

export interface ChunkRef {
  runId: number;
  round: number;
  chunkNo: number;
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
export interface ChunkObserver extends Partial<ThrottleObserver>, HeldRowsObserver {
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
  /** The worker's rests after slices, shared by its chunks (slice-pause.ts); none: each chunk rests alone. */
  slicePacer?: SlicePacer;
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
  /** The chunk had already ended, or another queue job ended it meanwhile: a repeated queue job. */
  | { kind: "skipped" };

const addTo = (totals: ChunkTotals, slice: { completed: number; failed: number; retryable: number }) => {
  totals.done += slice.completed + slice.failed + slice.retryable;
  totals.completed += slice.completed;
  totals.failed += slice.failed;
  totals.retryable += slice.retryable;
};

/** Works through the chunk's rows, and reports how long it took and how it ended (for metrics). */
export async function workThroughChunk(deps: ChunkDeps, ref: ChunkRef): Promise<ChunkOutcome> {
  const began = performance.now();
  const started = { job: "" };
  let ended = "error";
  try {
    const outcome = await workSlices(deps, ref, started);
    ended = outcome.kind;
    return outcome;
  } finally {
    deps.observer?.chunkEnded(started.job, ended, (performance.now() - began) / 1000);
  }
}

/**
 * Starts the chunk, then works through its slices until its range is done, the worker drains,
 * the run stops it, or another queue job ends it. A slice whose records wait on I/O (it claims a part
 * at a time) starts the next once it has claimed all its rows: the next claims its first part
 * while this one's last records run, and its records take the slots as they free, so the chunk's
 * records in flight do not drain while a slice writes its last outcomes and commits. The two
 * are two transactions on two connections; at most two slices of a chunk are under way.
 */
async function workSlices(deps: ChunkDeps, ref: ChunkRef, started: { job: string }): Promise<ChunkOutcome> {
  const start = await deps.db((client) => beginChunk(client, ref, deps.worker));
  const totals: ChunkTotals = { slices: 0, done: 0, completed: 0, failed: 0, retryable: 0 };
  if (start.kind === "stopped") return { kind: "stopped", runStatus: start.runStatus, totals };
  if (start.kind === "ended") return { kind: "skipped" };

  const { chunk, settings } = start;
  const { db, draining, abort, observer } = deps;
  started.job = start.job;
  const onWorker = jobOnWorker(deps, deps.jobs.get(start.job));
  const { job } = onWorker;
  const log = deps.logger.child({
    job: job.name,
    run: ref.runId,
    round: ref.round,
    chunk: ref.chunkNo,
    ids: [chunk.firstId, chunk.lastId],
  });
  const began = performance.now();
  // the chunk's range; its end moves down when the chunk gives part of it away
  const range = { ...chunk };
  const { maxAttempts } = settings;
  const params = runParamsFor(job, ref.runId, settings.params);
  const sizer = new SliceSizer(onWorker.concurrency, SLICE_TARGET_SHARE * onWorker.lockHoldMs, {
    job: job.name,
    slices: deps.settledSlices,
  });
  const tokens = new SliceTokens(onWorker.tokens);
  const slices = {
    db,
    job: onWorker,
    ref,
    params,
    range,
    maxAttempts,
    subset: settings.subset,
    statementTimeoutMs: deps.statementTimeoutMs,
    draining,
    abort,
    slots: new RecordSlots(onWorker.concurrency),
    sizer,
    tokens,
  };
  const waitMs = onWorker.lockHoldMs + onWorker.timeoutMs;
  const passes = new RangePasses({ db, log, observer, job, ref, range, maxAttempts, subset: settings.subset, waitMs });
  const pauses = new SlicePauses({
    db,
    runId: ref.runId,
    job: job.name,
    ratio: onWorker.pauseRatio,
    pacer: deps.slicePacer,
    signal: draining,
    keepsRunning: KEEPS_RUNNING,
    observer,
  });
  const lateWrites = new LateWrites({
    db,
    written: (counted, writeSeconds) => {
      addTo(totals, counted);
      observer?.sliceCommitted({ job: job.name, ...counted, claimSeconds: 0, writeSeconds });
    },
  });
  const stopped = (runStatus: string): ChunkOutcome => ({ kind: "stopped", runStatus: runStatus as RunStatus, totals });

  // the last key the chunk's slices have processed: none yet
  let afterId: bigint | undefined;
  let current: SliceUnderWay | undefined;
  let next: SliceUnderWay | undefined;
  try {
    for (;;) {
      if (draining.aborted) {
        log.info({ ...totals }, "worker shutting down: chunk handed back");
        return { kind: "handed-back", totals };
      }
      if (!current && deps.throttle) {
        const { worker } = deps;
        const runId = ref.runId;
        const throttle = { db, worker, draining, abort, observer, job, runId, log, keepsRunning: KEEPS_RUNNING };
        const stoppedAs = await deps.throttle.pass(throttle);
        if (stoppedAs) return stopped(stoppedAs);
        if (draining.aborted) continue;
      }
      current ??= new SliceUnderWay(slices, afterId);
      const claimedUpTo = await current.claimedAllOrEnded();
      // only a slice claimed a part at a time (records waiting on I/O) starts the next ahead, a
      // chunk that pauses too: its database is idle most of the time already, and its slots would
      // drain before each pause
      const mayClaim = deps.throttle?.mayClaim(job) ?? true;
      if (claimedUpTo !== undefined && !draining.aborted && mayClaim) next = new SliceUnderWay(slices, claimedUpTo);
      let slice: SliceResult | undefined;
      try {
        slice = await current.result;
      } catch (error) {
        if (error instanceof ChunkEndedError) {
          log.warn({ ...totals }, "another queue job ended the chunk: slice rolled back");
          return { kind: "skipped" };
        }
        if (!abort.aborted) throw error;
        log.warn({ ...totals }, "shutdown grace ran out: slice rolled back, chunk handed back");
        return { kind: "handed-back", totals };
      }
      const ended = current;
      current = next;
      next = undefined;
      if (!slice) {
        // the pass over the range is over once the records running apart have written their rows
        await lateWrites.writtenAll();
        if (!(await passes.passEnded(totals.done))) break;
        afterId = undefined;
        continue;
      }
      if (slice.late) {
        lateWrites.start(slice.late);
        log.debug({ running: slice.late.count, limit: ended.limit }, "slice committed at its lock bound");
      }
      // the rows of records still running apart are past where the next slice claims
      afterId = slice.lastProcessedId;
      if (slice.done === 0) {
        if (slice.late) sizer.shrinkAfterNoneDone(ended.limit);
        continue;
      }
      totals.slices++;
      addTo(totals, slice);
      // another queue job took the upper part of the range (chunk-split.ts): stop where it starts
      if (slice.chunkLastId < range.lastId) range.lastId = slice.chunkLastId;
      observer?.sliceCommitted({
        job: job.name,
        completed: slice.completed,
        failed: slice.failed,
        retryable: slice.retryable,
        claimSeconds: slice.claimMs / 1000,
        writeSeconds: slice.writeMs / 1000,
      });
      log.debug(
        { rows: slice.done, limit: ended.limit, ms: Math.round(performance.now() - ended.started) },
        "slice committed",
      );
      // a pause lets running chunks finish; a cancel stops them here
      if (!KEEPS_RUNNING.has(slice.runStatus)) return stopped(slice.runStatus);
      sizer.committed(slice, ended.limit, ended.started);
      const stoppedAs = await pauses.after(slice);
      // the next slice's time counts from the pause's end
      if (pauses.pausing) sizer.restartClock();
      if (stoppedAs) return stopped(stoppedAs);
    }
  } finally {
    // a slice started ahead of one that ended the chunk's work stops starting records, and ends
    for (const underWay of [current, next]) {
      underWay?.stop();
      await underWay?.result.catch(() => undefined);
    }
    // a chunk that ends otherwise leaves a late outcome it could not write claimable
    await lateWrites.settled();
    passes.ended();
    await tokens.addUncountedTo(db, ref.runId, log);
  }

  passes.finish();
  // one of many in a run: its progress shows the same at a glance
  log.debug({ ...totals, ms: Math.round(performance.now() - began) }, "chunk processed");
  return { kind: "finished", totals, sliceRows: sizer.limit };
}
