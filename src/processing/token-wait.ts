import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import { addRateLimitWait } from "../runs/runs";
import type { TokenSource } from "./rate-limit";

/** What a slice prepaid holds: tokens taken for it and not yet used by a record. */
export type Prepaid = { left: number };

/**
 * A chunk's slices taking the tokens of its job's rate limit (RateLimiter), and the seconds they
 * waited for them on their way to the run's total (batch_jobs.rate_limit_waited_seconds). A wait
 * is counted with the outcomes of the next slice that commits some, in its transaction; a wait no
 * slice counted (its slice found no rows, stopped, or rolled back) stays here until one does, or
 * until the chunk ends (addUncountedTo).
 */
export class SliceTokens {
  /** Seconds waited that the run's total has not counted yet. */
  private uncounted = 0;

  constructor(private readonly tokens: TokenSource | undefined) {}

  /**
   * Runs a slice of at most `most` rows once tokens of the job's rate limit are at hand for some
   * (without a limit, at once, of `most`): it claims only as many rows as it holds tokens, so its
   * records never wait for one with their rows locked, and the wait is the slice's, before its
   * claim. Tokens its records did not use go back. Undefined, like a slice that found no rows,
   * when `wanted` says it will not run after all. The slice is handed the seconds waited to count
   * with its outcomes, and says with `waitCounted` whether it did.
   */
  async withTokens<T extends { waitCounted: number }>(
    most: number,
    wanted: () => boolean,
    slice: (limit: number, prepaid: Prepaid | undefined, waitSeconds: number) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (!this.tokens) return this.counting(0, (waitSeconds) => slice(most, undefined, waitSeconds));
    const asked = performance.now();
    const taken = this.tokens.take(most, wanted);
    const granted = typeof taken === "number" ? taken : await taken;
    const waitedSeconds = (performance.now() - asked) / 1000;
    if (granted === 0) {
      this.uncounted += waitedSeconds;
      return undefined;
    }
    const prepaid = { left: granted };
    try {
      return await this.counting(waitedSeconds, (waitSeconds) => slice(granted, prepaid, waitSeconds));
    } finally {
      // the slice found fewer rows than it held tokens for, or stopped starting records
      this.tokens.giveBack(prepaid.left);
      prepaid.left = 0;
    }
  }

  /** Hands the slice every wait not counted yet; what it did not count stays uncounted. */
  private async counting<T extends { waitCounted: number }>(
    waitedSeconds: number,
    slice: (waitSeconds: number) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    const waitSeconds = this.uncounted + waitedSeconds;
    this.uncounted = 0;
    let counted = 0;
    try {
      const result = await slice(waitSeconds);
      counted = result?.waitCounted ?? 0;
      return result;
    } finally {
      this.uncounted += waitSeconds - counted;
    }
  }

  /** The chunk ended: the wait no slice counted goes to the run's total now. */
  async addUncountedTo(db: WithClient, runId: number, log: Logger): Promise<void> {
    if (this.uncounted <= 0) return;
    const seconds = this.uncounted;
    this.uncounted = 0;
    await db((client) => addRateLimitWait(client, runId, seconds)).catch((error: unknown) =>
      log.warn({ err: error, seconds }, "could not add the chunk's wait for tokens to its run"),
    );
  }
}
