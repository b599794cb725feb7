import type { WithClient } from "../db/pool";
import { type LateRecords, writeLateOutcomes } from "./slice";

/** Outcomes a write added, as a chunk counts them. */
export type Counted = { completed: number; failed: number; retryable: number };

/**
 * The writes of a chunk's records that ran past their slice's commit at its lock bound
 * (LateRecords): each outcome written apart as it comes, in a transaction of its own. Until a
 * record's outcome is written, its row is still claimable.
 */
export class LateWrites {
  private readonly writes: Promise<void>[] = [];

  constructor(
    private readonly chunk: {
      db: WithClient;
      /** Outcomes written, with the write's time, for the chunk's totals and its metrics. */
      written: (counted: Counted, writeSeconds: number) => void;
    },
  ) {}

  /** Writes the slice's late records' outcomes as they end; a failed write fails the chunk where it waits (writtenAll). */
  start(late: LateRecords): void {
    const writing = this.write(late);
    // never an unhandled rejection, which ends the process
    writing.catch(() => undefined);
    this.writes.push(writing);
  }

  /** Waits for the records still running apart to end and be written; rejects if a write failed. */
  async writtenAll(): Promise<void> {
    await Promise.all(this.writes.splice(0));
  }

  /** The chunk ended otherwise: waits for the writes, leaving a late outcome it could not write claimable. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.writes);
  }

  private async write(late: LateRecords): Promise<void> {
    const { db, written } = this.chunk;
    for (let ended = await late.next(); ended; ended = await late.next()) {
      const { rows, outcomes } = ended;
      const started = performance.now();
      const counted = await db((client) => writeLateOutcomes(client, late.request, rows, outcomes));
      written(counted, (performance.now() - started) / 1000);
    }
  }
}
