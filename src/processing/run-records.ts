import type { JobDefinition, RecordContext } from "../jobs/define";

/** What a job's function does to one record. */
export type RecordFunction = JobDefinition["process"];

export type RecordOutcome =
  | { status: "completed"; result: Record<string, unknown> | undefined }
  | { status: "failed"; error: string };

/**
 * A claimed row: the job's record (its key and the columns it reads, by property) and the row's
 * processing state, under names no property may take.
 */
export interface ClaimedRow extends Record<string, unknown> {
  $status: string;
  $run: number | null;
  /** Attempts recorded before this one. */
  $attempts: number;
}

export interface RunRecordsOptions {
  runId: number;
  /** The property holding a record's key. */
  key: string;
  concurrency: number;
  timeoutMs: number;
  /** Aborting it abandons the records in flight: the caller rolls the slice back. */
  signal: AbortSignal;
  /** Asked before each record starts; once false, no further record starts. */
  mayStart: () => boolean;
  /** Where `records` grows from while they run, and outcomes go as they come (src/chunks/slice.ts). */
  feed?: RecordFeed;
  /** Shared with the chunk's next slice, which starts before this one ends: a record runs only in one of them. */
  slots?: RecordSlots;
}

/**
 * The records in flight of one chunk, at most `size` whatever slices they belong to: a slice
 * starts while the one before it finishes its last records and commits, and its records take
 * the slots those free (src/chunks/work-through-chunk.ts).
 */
export class RecordSlots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Takes a slot: at once (undefined) when one is free, else once one is given back. */
  take(): Promise<void> | undefined {
    if (this.free > 0) {
      this.free--;
      return undefined;
    }
    return new Promise((taken) => this.waiting.push(taken));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** How records are handed out as they are claimed, and their outcomes taken as they come. */
export interface RecordFeed {
  /** Resolves true once more than `length` records are claimed, false when no more will be. */
  more(length: number): Promise<boolean>;
  /** The record at `index` starts: the next part is claimed before those claimed run out. */
  started(index: number): void;
  /** The record at `index` has its outcome: outcomes are written a part at a time as they come. */
  settled(index: number, outcome: RecordOutcome): void;
}

const MAX_ERROR_LENGTH = 2000;

function failed(error: unknown): RecordOutcome {
  const message = error instanceof Error ? error.message : String(error);
  return { status: "failed", error: message.slice(0, MAX_ERROR_LENGTH) || "error without a message" };
}

/**
 * Per-record context. Its AbortSignal is only made if the business logic asks for it, and is
 * aborted by its lane (timeout, or the slice's signal), so records add no listeners of their own.
 */
class RowContext implements RecordContext {
  private controller: AbortController | undefined;
  private abortedWith: unknown;

  constructor(
    readonly runId: number,
    readonly attempt: number,
    private readonly rowId: number,
  ) {}

  get idempotencyKey(): string {
    return `${this.runId}:${this.rowId}:${this.attempt}`;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.abortedWith !== undefined;
  }

  abort(reason: unknown): void {
    this.abortedWith = reason;
    this.controller?.abort(reason);
  }
}

/**
 * Runs the business logic over the records of one slice, `concurrency` at a time, each with
 * its own timeout. Records start in order, so the outcomes returned are for a prefix of
 * `records`: all of them unless `mayStart` said stop. Never rejects for a record's failure.
 * Rejects only when `signal` aborts, since the outcomes are then incomplete.
 */
export async function runRecords(
  records: ClaimedRow[],
  logic: RecordFunction,
  options: RunRecordsOptions,
): Promise<RecordOutcome[]> {
  const outcomes: RecordOutcome[] = new Array(records.length);
  const abandonInFlight = new Set<() => void>();
  const onAbort = () => {
    for (const abandon of abandonInFlight) abandon();
  };
  options.signal.addEventListener("abort", onAbort, { once: true });
  let next = 0;
  const { feed, slots } = options;

  const lane = async () => {
    let settle: (outcome: RecordOutcome) => void = () => undefined;
    let current: RowContext | undefined;
    // One timer per lane, re-armed for every record, instead of one per record.
    const timer = setTimeout(() => {
      current?.abort(new Error("record timed out"));
      settle(failed(`timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const abandon = () => {
      current?.abort(options.signal.reason);
      settle(failed("abandoned"));
    };
    abandonInFlight.add(abandon);
    try {
      starting: while (!options.signal.aborted && options.mayStart()) {
        const waited = slots?.take();
        if (waited) await waited;
        try {
          // once those given have all started, the feed's next part, if any; taken with no await
          // between the last look at `next` and its increment, which other lanes share
          while (next >= records.length) if (!(await feed?.more(next))) break starting;
          if (options.signal.aborted || (waited && !options.mayStart())) break;
          const index = next++;
          feed?.started(index);
          const record = records[index] as ClaimedRow;
          const ctx = new RowContext(options.runId, record.$attempts + 1, record[options.key] as number);
          current = ctx;
          timer.refresh();
          outcomes[index] = await new Promise<RecordOutcome>((resolve) => {
            settle = resolve;
            try {
              logic(record, ctx).then(
                (result) => resolve({ status: "completed", result }),
                (error) => resolve(failed(error)),
              );
            } catch (error) {
              resolve(failed(error));
            }
          });
          feed?.settled(index, outcomes[index] as RecordOutcome);
        } finally {
          slots?.give();
        }
      }
    } finally {
      clearTimeout(timer);
      abandonInFlight.delete(abandon);
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, records.length) }, lane));
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
  if (options.signal.aborted) throw options.signal.reason ?? new Error("aborted");
  outcomes.length = next;
  return outcomes;
}
