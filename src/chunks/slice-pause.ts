import { setTimeout as sleep } from "node:timers/promises";
import type { WithClient } from "../db/pool";
import { getRun } from "../runs/runs";

/**
 * The pause a chunk makes after each slice (SLICE_PAUSE_RATIO, a job's `defaults.slicePauseRatio`):
 * the ratio times what the slice's statements took (its claims and writes), so the database gets
 * idle time in proportion to the work it did, like pt-online-schema-change's --sleep or GitLab's
 * batched migrations' pause_ms. The chunk claims nothing meanwhile and holds no row. A shutdown ends the pause at once; a cancel of the
 * run within a second (the run is looked at that often), so neither waits for a long pause.
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

/** The pauses of one chunk: after each slice, SLICE_PAUSE_RATIO times the database's time on it. */
export class SlicePauses {
  constructor(
    private readonly chunk: {
      db: WithClient;
      runId: number;
      job: string;
      /** After each slice, how many times the time its statements took the chunk pauses; 0: never. */
      ratio: number;
      signal: AbortSignal;
      keepsRunning: ReadonlySet<string>;
      observer: { slicePaused?(job: string, seconds: number): void } | undefined;
    },
  ) {}

  /** Whether the chunk pauses after its slices. */
  get pausing(): boolean {
    return this.chunk.ratio > 0;
  }

  /** Pauses after a slice, if the chunk does; resolves with the run's status if the run stopped meanwhile. */
  async after(slice: { claimMs: number; writeMs: number }): Promise<string | undefined> {
    if (!this.pausing) return undefined;
    const { db, runId, job, ratio, signal, keepsRunning, observer } = this.chunk;
    const pausedAt = performance.now();
    // the database's time, not the slice's: records waiting on I/O leave it idle already
    const ms = ratio * (slice.claimMs + slice.writeMs);
    const stoppedAs = await pauseAfterSlice({ db, runId, ms, signal, keepsRunning });
    observer?.slicePaused?.(job, (performance.now() - pausedAt) / 1000);
    return stoppedAs;
  }
}
