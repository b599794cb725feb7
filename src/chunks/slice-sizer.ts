/**
 * How many rows a chunk's next slice claims, and how many at a time: sized from how the slices
 * before it went, so that a slice takes SLICE_TARGET_SHARE of the job's lock bound whatever the
 * business logic costs.
 */

/** What a slice is sized to take, of the lock bound: the rest absorbs a slower slice than the last. */
export const SLICE_TARGET_SHARE = 0.5;
export const MAX_SLICE_ROWS = 5000;
export const STREAM_FROM_RECORD_MS = 1;

/** Where a job's slices settled: their rows, and a record's time in flight. */
export interface SettledSlices {
  rows: number;
  recordMs: number;
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

/**
 * A chunk's slice size and a record's time in flight, as its slices settle them. A chunk starts
 * where the job's slices settled in this worker's chunks before (`settled`), else small.
 */
export class SliceSizer {
  /** The next slice's rows. */
  limit: number;
  /** A record's time in flight, from the last slice. */
  private recordMs: number;
  /** Never under one wave of concurrent records. */
  private readonly floor: number;
  /** When the last slice ended: a slice that started before it counts its time from there. */
  private lastEnded = performance.now();

  constructor(
    private readonly concurrency: number,
    private readonly targetMs: number,
    private readonly settled: { job: string; slices: Map<string, SettledSlices> | undefined },
  ) {
    const before = settled.slices?.get(settled.job);
    this.floor = Math.min(concurrency, MAX_SLICE_ROWS);
    this.limit = before?.rows ?? Math.min(Math.max(4 * concurrency, 100), MAX_SLICE_ROWS);
    this.recordMs = before?.recordMs ?? 0;
  }

  /** Rows the next slice claims at a time; undefined: all at once. */
  part(): number | undefined {
    return slicePart(this.limit, this.concurrency, this.recordMs);
  }

  /** A slice of `limit` rows committed at its lock bound with no record done: the next is half as large. */
  shrinkAfterNoneDone(limit: number): void {
    this.limit = Math.max(Math.floor(limit / 2), this.floor);
  }

  /**
   * A slice of `limit` rows, started at `startedAt`, committed `slice.done` outcomes: the next
   * slice's size and a record's time in flight follow from its pace. Returns its time in ms.
   */
  committed(
    slice: { claimed: number; done: number; claimMs: number; writeMs: number },
    limit: number,
    startedAt: number,
  ): number {
    const now = performance.now();
    const elapsedMs = now - Math.max(startedAt, this.lastEnded);
    this.lastEnded = now;
    // a record's time in flight, from the slice's time the claim and the writes did not take
    this.recordMs = ((elapsedMs - slice.claimMs - slice.writeMs) * this.concurrency) / slice.done;
    this.limit = nextSliceLimit(limit, slice, elapsedMs, this.floor, this.targetMs);
    this.settled.slices?.set(this.settled.job, { rows: this.limit, recordMs: this.recordMs });
    return elapsedMs;
  }

  /** The chunk paused: the next slice's time counts from now. */
  restartClock(): void {
    this.lastEnded = performance.now();
  }
}
