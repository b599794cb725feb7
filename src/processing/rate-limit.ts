import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import type { JobDefinition, RateLimit } from "../jobs/define";

/**
 * A job's rate limit across every worker process of every pod: one token bucket per job in the
 * database (batch_take_tokens, sql/migrations/018_rate_limits.sql and 024), and in each process
 * one RateLimiter per job, shared by its chunks. A slice takes its tokens before it claims, as
 * many as are at hand up to its size, and claims only as many rows (src/processing/token-wait.ts):
 * no record waits for a token while its row is locked. The limiter takes from the bucket what its
 * waiting slices ask for, up to a quarter of a second's worth at a time, granted whole or not at
 * all: processes sharing the bucket then each take a batch in turn rather than a few tokens each,
 * whose slices of a few rows would cost more than the limit allows under load. Tokens a slice could not
 * use (its rows ran out, or it stopped starting records) go to the next slice waiting; those
 * nobody waits for go back to the bucket soon after, so tokens taken and unused never let the
 * cluster run above the limit by more than a fraction of a second's worth, nor are they lost to it.
 */

/** Each take asks for at most this many seconds' worth, and a bucket found short is asked again after about half as long. */
export const TAKE_SECONDS = 0.25;
/** Tokens at hand and not handed out within this long go back to the bucket. */
export const TOKEN_LIFETIME_MS = 250;
/** How long to wait after the database refused a take (it is down, or restarting). */
const RETRY_AFTER_FAILURE_MS = 1000;

const TAKE_TOKENS = "SELECT batch_take_tokens($1, $2, $3, $4, $5) AS granted";

/** What a rate limiter reports, for metrics. */
export interface RateLimitObserver {
  tokensGranted(job: string, tokens: number): void;
  /** Seconds chunks waited for tokens, summed over chunks. */
  tokensWaited(job: string, seconds: number): void;
  /** A record waited for a token while its slice held rows locked: a slice claimed more rows than it held tokens for. */
  waitedWithRowsLocked(job: string): void;
}

/** What a chunk's slices, and their records, take tokens from (src/processing/token-wait.ts). */
export interface TokenSource {
  /**
   * Between 1 and `most` tokens, as many as are at hand: at once (a number) when some are, else
   * a promise of their number once the bucket grants some, or of 0 once `wanted` says they will
   * not be used after all (the slice will not claim): looked at before every take, so a waiter
   * stops within about a take's interval, and no listener is left behind. `rowsLocked`: the
   * taker already holds rows locked, which a wait here keeps locked (counted, for metrics).
   */
  take(most: number, wanted: () => boolean, rowsLocked?: boolean): number | Promise<number>;
  /** Tokens taken and not used: the next waiting gets them. */
  giveBack(count: number): void;
}

/** The limit a job runs under in this process: RATE_LIMIT_PER_S and RATE_LIMIT_BURST over the job's own. */
export function effectiveRateLimit(
  job: RateLimit | undefined,
  override: { perSecond: number | "off" | undefined; burst: number | undefined },
): RateLimit | undefined {
  if (override.perSecond === "off") return undefined;
  if (override.perSecond !== undefined) {
    return { perSecond: override.perSecond, burst: override.burst ?? Math.max(override.perSecond, 1) };
  }
  if (!job) return undefined;
  return { perSecond: job.perSecond, burst: override.burst ?? job.burst };
}

interface Waiter {
  since: number;
  most: number;
  wanted: () => boolean;
  answer: (granted: number) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class RateLimiter implements TokenSource {
  private readonly waiters: Waiter[] = [];
  /** Tokens at hand, and the timer that gives them back to the bucket. */
  private stock = 0;
  private stockReturn: NodeJS.Timeout | undefined;
  private taking = false;
  /** Seconds waited, not yet reported to the database. */
  private waitedSeconds = 0;

  constructor(
    readonly job: string,
    readonly limit: RateLimit,
    private readonly db: WithClient,
    private readonly logger: Logger,
    private readonly observer?: RateLimitObserver,
  ) {}

  /** Tokens asked for at a time, at most: a quarter of a second's worth, at least one, at most the burst. */
  get batch(): number {
    return Math.max(1, Math.min(Math.ceil(this.limit.perSecond * TAKE_SECONDS), Math.floor(this.limit.burst)));
  }

  take(most: number, wanted: () => boolean, rowsLocked = false): number | Promise<number> {
    const wants = Math.max(1, Math.floor(most));
    if (this.waiters.length === 0) {
      const atHand = this.fromStock(wants);
      if (atHand > 0) return atHand;
    }
    if (rowsLocked) this.observer?.waitedWithRowsLocked(this.job);
    return new Promise<number>((answer) => {
      this.waiters.push({ since: performance.now(), most: wants, wanted, answer });
      void this.takeWhileWaited();
    });
  }

  giveBack(count: number): void {
    this.dropUnwanted();
    const now = performance.now();
    let left = count;
    while (left > 0 && this.waiters.length > 0) {
      const waiter = this.waiters.shift() as Waiter;
      const granted = Math.min(left, waiter.most);
      left -= granted;
      this.hand(waiter, granted, now);
    }
    this.keep(left);
  }

  /** Gives the tokens at hand back to the bucket now, before the process's pool closes. */
  async close(): Promise<void> {
    clearTimeout(this.stockReturn);
    this.stockReturn = undefined;
    const back = this.stock;
    this.stock = 0;
    if (back > 0) await this.returnTokens(back);
  }

  /** Keeps tokens at hand for a slice of this process, for a while: then they go back to the bucket. */
  private keep(count: number): void {
    this.stock += count;
    if (this.stock === 0 || this.stockReturn) return;
    this.stockReturn = setTimeout(() => {
      this.stockReturn = undefined;
      const back = this.stock;
      this.stock = 0;
      if (back > 0) void this.returnTokens(back);
    }, TOKEN_LIFETIME_MS);
    this.stockReturn.unref();
  }

  /** Answers the waiters whose tokens will not be used after all; their wait counts all the same. */
  private dropUnwanted(): void {
    const now = performance.now();
    for (let index = this.waiters.length - 1; index >= 0; index--) {
      const waiter = this.waiters[index] as Waiter;
      if (waiter.wanted()) continue;
      this.waiters.splice(index, 1);
      this.waitedSeconds += (now - waiter.since) / 1000;
      waiter.answer(0);
    }
  }

  /** Up to `most` tokens of those at hand. */
  private fromStock(most: number): number {
    const taken = Math.min(this.stock, most);
    this.stock -= taken;
    return taken;
  }

  /** Hands the tokens at hand to the waiters, first come first served, each as many as it asked for. */
  private handOut(now: number): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0] as Waiter;
      const granted = this.fromStock(waiter.most);
      if (granted === 0) return;
      this.waiters.shift();
      this.hand(waiter, granted, now);
    }
  }

  private hand(waiter: Waiter, granted: number, now: number): void {
    this.waitedSeconds += (now - waiter.since) / 1000;
    waiter.answer(granted);
  }

  /** Takes tokens from the job's bucket for as long as slices wait, what they ask for, a batch at most. */
  private async takeWhileWaited(): Promise<void> {
    if (this.taking) return;
    this.taking = true;
    try {
      for (;;) {
        this.dropUnwanted();
        this.handOut(performance.now());
        if (this.waiters.length === 0) break;
        const asked = this.waiters.reduce((sum, waiter) => sum + waiter.most, 0);
        const want = Math.min(this.batch, asked);
        const granted = await this.takeTokens(want);
        if (granted === undefined) {
          await sleep(RETRY_AFTER_FAILURE_MS);
          continue;
        }
        const now = performance.now();
        this.keep(granted);
        this.handOut(now);
        // the bucket held less than a whole take: come back as it refills, twice per take's worth
        // so that a lone process keeps up with the limit (jittered, so that the processes of a
        // deployment do not all ask at once)
        if (granted < want) await sleep((TAKE_SECONDS / 2) * 1000 * (0.8 + 0.4 * Math.random()));
      }
    } finally {
      this.taking = false;
    }
  }

  /** Gives tokens taken and not used back to the bucket (a take of fewer than none). */
  private async returnTokens(count: number): Promise<void> {
    try {
      await this.db((client) =>
        client.query(TAKE_TOKENS, [this.job, -count, this.limit.perSecond, this.limit.burst, 0]),
      );
    } catch (error) {
      this.logger.warn({ err: error, job: this.job, tokens: count }, "could not give unused rate-limit tokens back");
    }
  }

  /** The tokens the bucket granted, or undefined when the database could not be asked. */
  private async takeTokens(want: number): Promise<number | undefined> {
    const waited = this.waitedSeconds;
    this.waitedSeconds = 0;
    try {
      const { rows } = await this.db((client) =>
        client.query<{ granted: number }>(TAKE_TOKENS, [
          this.job,
          want,
          this.limit.perSecond,
          this.limit.burst,
          waited,
        ]),
      );
      const granted = rows[0]?.granted ?? 0;
      this.observer?.tokensGranted(this.job, granted);
      this.observer?.tokensWaited(this.job, waited);
      return granted;
    } catch (error) {
      this.waitedSeconds += waited;
      this.logger.warn({ err: error, job: this.job }, "could not take rate-limit tokens; trying again");
      return undefined;
    }
  }
}

/** This process's rate limiters, one per job that has a limit, made as its chunks first ask. */
export class RateLimiters {
  private readonly limiters = new Map<string, RateLimiter | undefined>();

  constructor(
    private readonly options: {
      db: WithClient;
      logger: Logger;
      override: { perSecond: number | "off" | undefined; burst: number | undefined };
      observer?: RateLimitObserver;
    },
  ) {}

  /** The job's limiter; undefined when it runs without a limit. */
  of(job: JobDefinition): RateLimiter | undefined {
    if (!this.limiters.has(job.name)) {
      const limit = effectiveRateLimit(job.rateLimit, this.options.override);
      const { db, logger, observer } = this.options;
      this.limiters.set(job.name, limit && new RateLimiter(job.name, limit, db, logger, observer));
    }
    return this.limiters.get(job.name);
  }
}
