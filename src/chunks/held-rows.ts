import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import type { JobDefinition } from "../jobs/define";
import { clearRowsHeld, countLeftInRange, recordRowsHeld, waitForRowsHeld } from "../runs/chunks";
import type { ChunkRange, RunSubset } from "../runs/model";

/** Another transaction still holds rows of the range; graphile-worker retries the chunk later. */
export class RowsHeldElsewhereError extends Error {
  override name = "RowsHeldElsewhereError";
}

/** What the passes report, for metrics (ChunkObserver's). */
export interface HeldRowsObserver {
  rowsHeldElsewhere?(job: string, change: number): void;
  heldRowsGaveUp?(job: string): void;
}

/**
 * A chunk's passes over its range, and the rows they left because another session held them
 * locked (FOR UPDATE SKIP LOCKED passes over them). Once a pass finds nothing more to claim, the
 * rows still claimable in the range are those: a second pass takes those released since; after
 * it, the chunk records who holds them (for `status` and the metrics), waits for their holder to
 * end its transaction, and makes one last pass; rows still held then fail the chunk's attempt
 * (RowsHeldElsewhereError), and graphile-worker retries it.
 */
export class RangePasses {
  /** Claimable rows of the range the last pass left. */
  private left = 0;
  private rescanned = false;
  private waited = false;
  /** Rows the chunk had processed when its last pass over the range began. */
  private doneBeforePass = 0;
  /** Rows this chunk waits on, held by another session, as the metrics have them. */
  private shown = 0;

  constructor(
    private readonly chunk: {
      db: WithClient;
      log: Logger;
      observer: HeldRowsObserver | undefined;
      job: JobDefinition;
      ref: { runId: number; round: number; chunkNo: number };
      range: ChunkRange;
      maxAttempts: number;
      /** The run's subset of the job's rows, if it has one. */
      subset: RunSubset | undefined;
      /** Longest the chunk waits for the holder of its rows: a slice's lock bound and a record's timeout. */
      waitMs: number;
    },
  ) {}

  /**
   * A pass over the range found no more rows to claim, the chunk having processed `done` rows in
   * all: true when another pass is to begin at the range's start, false when the chunk is through
   * (finish, then, throws if rows are left).
   */
  async passEnded(done: number): Promise<boolean> {
    const { db, log, job, ref, range, maxAttempts, waitMs } = this.chunk;
    const scope = { runId: ref.runId, subset: this.chunk.subset };
    this.left = await db((client) => countLeftInRange(client, job, range, maxAttempts, scope));
    if (this.left === 0) return false;
    // a pass that processed rows may have passed over some that a slice claimed and stopped
    // before starting (its lock bound came first: its records ran past it, or waited for a
    // rate limit's tokens): those are free again, and another pass takes them as a first
    // rescan would
    if (done > this.doneBeforePass) this.rescanned = this.waited = false;
    this.doneBeforePass = done;
    if (this.waited) return false;
    if (this.rescanned) {
      // still held after a second pass: wait for their holder (another chunk's slice, which
      // claimed them before this chunk was split from it) to end, then one last pass
      this.waited = true;
      const held = await db((client) => recordRowsHeld(client, job, ref, range, maxAttempts, scope));
      if (held) log.warn({ ...held }, "rows held by another session: waiting for it to end its transaction");
      this.show(held?.rows ?? 0);
      const released = await db((client) => waitForRowsHeld(client, job, range, maxAttempts, waitMs, scope));
      if (!released) return false;
      this.show(0);
      if (held) await db((client) => clearRowsHeld(client, ref));
    }
    // rows skipped while another transaction held them: one more pass takes those released since
    this.rescanned = true;
    return true;
  }

  /** The chunk's passes are over: throws when rows of its range are still held by another session. */
  finish(): void {
    if (this.left === 0) return;
    this.chunk.observer?.heldRowsGaveUp?.(this.chunk.job.name);
    const { range } = this.chunk;
    throw new RowsHeldElsewhereError(
      `${this.left} rows of ids ${range.firstId}-${range.lastId} are held by another transaction`,
    );
  }

  /** The chunk ended, however: it waits on no rows any more, as the metrics have it. */
  ended(): void {
    this.show(0);
  }

  private show(rows: number): void {
    if (rows !== this.shown) this.chunk.observer?.rowsHeldElsewhere?.(this.chunk.job.name, rows - this.shown);
    this.shown = rows;
  }
}
