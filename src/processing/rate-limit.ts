import type { WithClient } from "../db/pool";
import type { JobDefinition, RateLimit } from "../jobs/define";
import type { Logger } from "../logger";

/**
 * A job's rate limit across every worker process of every pod: one token bucket per job in the
 * database (batch_take_tokens, sql/migrations/018_rate_limits.sql), and in each process one
 * RateLimiter per job, shared by its chunks, that takes tokens a tenth of a second's worth at a
 * time while records wait and hands them out one a record. A token a record could not use (its
 * slice stopped) goes to the next record waiting; one nobody waits for expires soon after it was
 * taken, so tokens taken and unused never let the cluster run above the limit by more than a
 * fraction of a second's worth.
 */

/** Each take asks for this many seconds' worth, and a bucket found dry is asked again after about as long. */
export const TAKE_SECONDS = 0.1;
/** Tokens taken and not handed out within this long are dropped. */
export const TOKEN_LIFETIME_MS = 250;
/** How long to wait after the database refused a take (it is down, or restarting). */
const RETRY_AFTER_FAILURE_MS = 1000;

const TAKE_TOKENS = "SELECT batch_take_tokens($1, $2, $3, $4, $5) AS granted";

/** What a rate limiter reports, for metrics. */
export interface RateLimitObserver {
  tokensGranted(job: string, tokens: number): void;
  recordsWaited(job: string, seconds: number): void;
}

/** What the records of a chunk take a token from before each starts (src/processing/run-records.ts). */
export interface TokenSource {
  /**
   * A token: at once (undefined) when one is at hand, else a promise of true once one is
   * granted, or of false once `wanted` says the record will not start after all (its slice
   * stopped starting records, or was abandoned): looked at before every take, so a record stops
   * waiting within about a take's interval, and no listener is left behind.
   */
  take(wanted: () => boolean): Promise<boolean> | undefined;
  /** A token taken and not used: the next record waiting gets it. */
  giveBack(): void;
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
  wanted: () => boolean;
  answer: (granted: boolean) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class RateLimiter implements TokenSource {
  private readonly waiters: Waiter[] = [];
  /** Tokens at hand, and when they expire. */
  private stock = 0;
  private stockExpiresAt = 0;
  private taking = false;
  /** Seconds records waited, not yet reported to the database. */
  private waitedSeconds = 0;

  constructor(
    readonly job: string,
    readonly limit: RateLimit,
    private readonly db: WithClient,
    private readonly logger: Logger,
    private readonly observer?: RateLimitObserver,
  ) {}

  /** Tokens asked for at a time: a tenth of a second's worth, at least one, at most the burst. */
  get batch(): number {
    return Math.max(1, Math.min(Math.ceil(this.limit.perSecond * TAKE_SECONDS), Math.floor(this.limit.burst)));
  }

  take(wanted: () => boolean): Promise<boolean> | undefined {
    if (this.waiters.length === 0 && this.fromStock()) return undefined;
    return new Promise<boolean>((answer) => {
      this.waiters.push({ since: performance.now(), wanted, answer });
      void this.takeWhileWaited();
    });
  }

  giveBack(): void {
    this.dropUnwanted();
    const next = this.waiters.shift();
    if (next) this.hand(next, performance.now());
    else if (performance.now() < this.stockExpiresAt) this.stock++;
  }

  /** Answers the records that will not start after all; their wait counts all the same. */
  private dropUnwanted(): void {
    const now = performance.now();
    for (let index = this.waiters.length - 1; index >= 0; index--) {
      const waiter = this.waiters[index] as Waiter;
      if (waiter.wanted()) continue;
      this.waiters.splice(index, 1);
      this.waitedSeconds += (now - waiter.since) / 1000;
      waiter.answer(false);
    }
  }

  private fromStock(): boolean {
    if (this.stock > 0 && performance.now() >= this.stockExpiresAt) this.stock = 0;
    if (this.stock === 0) return false;
    this.stock--;
    return true;
  }

  private hand(waiter: Waiter, now: number): void {
    this.waitedSeconds += (now - waiter.since) / 1000;
    waiter.answer(true);
  }

  /** Takes tokens from the job's bucket for as long as records wait, a batch at a time. */
  private async takeWhileWaited(): Promise<void> {
    if (this.taking) return;
    this.taking = true;
    try {
      for (;;) {
        this.dropUnwanted();
        if (this.waiters.length === 0) break;
        while (this.waiters.length > 0 && this.fromStock())
          this.hand(this.waiters.shift() as Waiter, performance.now());
        if (this.waiters.length === 0) break;
        const want = Math.min(this.batch, this.waiters.length);
        const granted = await this.takeTokens(want);
        if (granted === undefined) {
          await sleep(RETRY_AFTER_FAILURE_MS);
          continue;
        }
        const now = performance.now();
        this.stock += granted;
        this.stockExpiresAt = now + TOKEN_LIFETIME_MS;
        while (this.waiters.length > 0 && this.fromStock()) this.hand(this.waiters.shift() as Waiter, now);
        // the bucket ran dry: come back once it has had time to refill (jittered, so that the
        // processes of a deployment do not all ask at once)
        if (granted < want) await sleep(TAKE_SECONDS * 1000 * (0.8 + 0.4 * Math.random()));
      }
    } finally {
      this.taking = false;
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
      this.observer?.recordsWaited(this.job, waited);
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
