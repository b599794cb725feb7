import { setTimeout as sleep } from "node:timers/promises";
import type { WithClient } from "../db/pool";
import { getRun } from "../runs/runs";

/**
 * The pause after each slice (SLICE_PAUSE_RATIO, a job's `defaults.slicePauseRatio`): the worker
 * leaves the database idle the ratio times what its slices' statements took (their claims and
 * writes), like pt-online-schema-change's --sleep or GitLab's batched migrations' pause_ms. A
 * pausing chunk claims nothing and holds no row. A shutdown ends the pause at once; a cancel of
 * the run within a second (the run is looked at that often), so neither waits for a long pause.
 */

/** How often a pausing chunk looks whether its run still keeps it running. */
const RUN_LOOKED_AT_MS = 1000;

export interface SlicePause {
  db: WithClient;
  runId: number;
  ms: number;
  /** A shutdown: ends the pause. */
  signal: AbortSignal;
  /** Run statuses under which the chunk goes on. */
  keepsRunning: ReadonlySet<string>;
}

/** Pauses; resolves with the run's status if the run stopped keeping its chunks running meanwhile. */
export async function pauseAfterSlice(pause: SlicePause): Promise<string | undefined> {
  const until = performance.now() + pause.ms;
  for (let left = pause.ms; left > 0 && !pause.signal.aborted; left = until - performance.now()) {
    await sleep(Math.min(left, RUN_LOOKED_AT_MS), undefined, { signal: pause.signal }).catch(() => undefined);
    if (pause.signal.aborted || performance.now() >= until) break;
    const run = await pause.db((client) => getRun(client, pause.runId));
    // a run gone is for the next slice to find
    if (run && !pause.keepsRunning.has(run.status)) return run.status;
  }
  return undefined;
}

/**
 * The worker's rests, shared by its chunks: after a slice that kept the database busy for D, the
 * worker rests `ratio` times D, after the rests already booked, and none of its chunks starts a
 * slice before that rest ends. One chunk alone rests `ratio` times each slice's database time;
 * several chunks of one worker rest in turn, so the worker's rests add up to `ratio` times what its
 * sessions used. Resting each chunk on its own would not: four chunks each resting half the time
 * still keep two sessions busy all the time.
 */
export class SlicePacer {
  private restsEndAt = 0;

  /** Books the rest after a slice; returns when (performance.now() time) the worker's rests end. */
  book(slice: { databaseMs: number; ratio: number }): number {
    this.restsEndAt = Math.max(this.restsEndAt, performance.now()) + slice.ratio * slice.databaseMs;
    return this.restsEndAt;
  }
}

/** The pauses of one chunk: after each slice, until the worker's rests end. */
export class SlicePauses {
  constructor(
    private readonly chunk: {
      db: WithClient;
      runId: number;
      job: string;
      /** How many times the time its slices' statements took the worker rests after them; 0: never. */
      ratio: number;
      /** The worker's, shared by its chunks; none: this chunk rests alone. */
      pacer: SlicePacer | undefined;
      signal: AbortSignal;
      keepsRunning: ReadonlySet<string>;
      observer: { slicePaused?(job: string, seconds: number): void } | undefined;
    },
  ) {}

  private readonly ownPacer = new SlicePacer();

  /** Whether the chunk pauses after its slices. */
  get pausing(): boolean {
    return this.chunk.ratio > 0;
  }

  /** Pauses after a slice, if the chunk does; resolves with the run's status if the run stopped meanwhile. */
  async after(slice: { claimMs: number; writeMs: number }): Promise<string | undefined> {
    if (!this.pausing) return undefined;
    const { db, runId, job, ratio, pacer, signal, keepsRunning, observer } = this.chunk;
    // the database's time, not the slice's: records waiting on I/O leave it idle already
    const databaseMs = slice.claimMs + slice.writeMs;
    const restsEndAt = (pacer ?? this.ownPacer).book({ databaseMs, ratio });
    const pausedAt = performance.now();
    const ms = restsEndAt - pausedAt;
    const stoppedAs = await pauseAfterSlice({ db, runId, ms, signal, keepsRunning });
    observer?.slicePaused?.(job, (performance.now() - pausedAt) / 1000);
    return stoppedAs;
  }
}
