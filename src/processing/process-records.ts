import type { ClaimedRows } from "../jobs/claimed-rows";
import { showValue } from "../jobs/columns";
import type { JobDefinition, RecordContext } from "../jobs/define";
import type { TokenSource } from "./rate-limit";

/** What a job's function does to one record. */
export type RecordFunction = JobDefinition["process"];

export type RecordOutcome =
  /** result: as the function returned it; the slice checks it against the job's columns as it writes it. */
  { status: "completed"; result: unknown } | FailedOutcome;

export type FailedOutcome = { status: "failed"; error: string };

export interface ProcessRecordsOptions {
  runId: number;
  /** The run's parameters, parsed by the job's schema: every record's `ctx.params` ({} if none). */
  params?: Record<string, unknown>;
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
  /**
   * The job's rate limit: each record has a token before it starts, one of `prepaid` while any
   * is left, else one taken from `tokens` (a wait with the slice's rows locked, counted).
   */
  tokens?: TokenSource;
  /** Tokens of `tokens` the slice took before it claimed: one for each of its rows, as it claims no more. */
  prepaid?: { left: number };
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

const NO_PARAMS: Record<string, unknown> = Object.freeze({});

/** A failed outcome, its message as a text column stores it: bounded, well-formed, without NUL. */
export function failedOutcome(message: string): FailedOutcome {
  const error = message
    .slice(0, MAX_ERROR_LENGTH)
    .replace(/[\uD800-\uDFFF]/gu, "\uFFFD")
    .replaceAll("\0", "\\0");
  return { status: "failed", error };
}

/**
 * The most readable message of whatever a job's function threw: an Error's message, a string,
 * an object's string `message`, or the value shown. Never throws, whatever the value does.
 */
export function describeThrown(thrown: unknown): string {
  try {
    if (typeof thrown === "string") return thrown || "threw an empty string";
    if (typeof thrown === "object" && thrown !== null && "message" in thrown) {
      const { message } = thrown as { message: unknown };
      if (typeof message === "string" && message !== "") return message;
      if (message !== undefined && message !== null && message !== "") return showValue(message);
    }
    if (thrown instanceof Error) return `${thrown.name || "Error"} without a message`;
    return `threw ${showValue(thrown)}`;
  } catch {
    return "threw a value that cannot be shown";
  }
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
    readonly params: Record<string, unknown>,
    readonly attempt: number,
    private readonly key: string,
  ) {}

  get idempotencyKey(): string {
    return `${this.runId}:${this.key}:${this.attempt}`;
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
 * `rows`: all of them unless `mayStart` said stop. Never rejects for a record's failure.
 * Rejects only when `signal` aborts, since the outcomes are then incomplete.
 */
export async function processRecords(
  rows: ClaimedRows,
  logic: RecordFunction,
  options: ProcessRecordsOptions,
): Promise<RecordOutcome[]> {
  const outcomes: RecordOutcome[] = new Array(rows.length);
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
      settle(failedOutcome(`timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const abandon = () => {
      current?.abort(options.signal.reason);
      settle(failedOutcome("abandoned"));
    };
    abandonInFlight.add(abandon);
    try {
      starting: while (!options.signal.aborted && options.mayStart()) {
        const waited = slots?.take();
        if (waited) await waited;
        let token: "prepaid" | "taken" | undefined;
        try {
          let granted: Promise<number> | undefined;
          if (options.prepaid && options.prepaid.left > 0) {
            options.prepaid.left--;
            token = "prepaid";
          }
          for (;;) {
            // once those given have all started, the feed's next part, if any; taken with no await
            // between the last look at `next` and its increment, which other lanes share
            while (next >= rows.length) if (!(await feed?.more(next))) break starting;
            if (token || !options.tokens) break;
            // a row and no token for it: wait for one, the row locked (its slice claimed past its tokens)
            const taken = options.tokens.take(1, () => !options.signal.aborted && options.mayStart(), true);
            if (typeof taken !== "number") granted = taken;
            if ((typeof taken === "number" ? taken : await taken) === 0) break starting;
            token = "taken";
            // another lane may have started the row meanwhile: look again
          }
          if (options.signal.aborted || ((waited || granted) && !options.mayStart())) break;
          const index = next++;
          token = undefined;
          feed?.started(index);
          const unreadable = rows.unreadable.size > 0 ? rows.unreadable.get(index) : undefined;
          if (unreadable !== undefined) {
            outcomes[index] = failedOutcome(unreadable);
          } else {
            const ctx = new RowContext(
              options.runId,
              options.params ?? NO_PARAMS,
              (rows.attempts[index] as number) + 1,
              rows.keys[index] as string,
            );
            current = ctx;
            timer.refresh();
            outcomes[index] = await new Promise<RecordOutcome>((resolve) => {
              settle = resolve;
              // whatever the function does (throws any value, returns no promise, never settles),
              // this record gets an outcome and the lane goes on
              try {
                const returned: unknown = logic(rows.records[index] as Record<string, unknown>, ctx);
                if (isThenable(returned)) {
                  returned.then(
                    (result) => resolve({ status: "completed", result }),
                    (error) => resolve(failedOutcome(describeThrown(error))),
                  );
                } else {
                  resolve({ status: "completed", result: returned });
                }
              } catch (error) {
                resolve(failedOutcome(describeThrown(error)));
              }
            });
          }
          feed?.settled(index, outcomes[index] as RecordOutcome);
        } finally {
          // a token of a record that did not start goes back: to the slice's, or to the next waiting
          if (token === "prepaid" && options.prepaid) options.prepaid.left++;
          else if (token === "taken") options.tokens?.giveBack(1);
          slots?.give();
        }
      }
    } finally {
      clearTimeout(timer);
      abandonInFlight.delete(abandon);
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, rows.length) }, lane));
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
  if (options.signal.aborted) throw options.signal.reason ?? new Error("aborted");
  outcomes.length = next;
  return outcomes;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
