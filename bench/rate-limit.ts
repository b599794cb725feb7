import { type Bench, median, round } from "./harness";

/**
 * What a rate limit costs a run it does not hold back: one worker process (default settings, at
 * full speed) over the same fresh rows without a limit, under `RATE_LIMIT_PER_S` far above what
 * it does, and under a limit near what it does (a share of the first unlimited round's rate),
 * the three interleaved round by round. Rates are spawn to exit, as the other processing figures.
 */

export interface RateLimitSizes {
  rows: number;
  /** A record's time in flight (PROCESS_DELAY_MS): the records a limit is for call other systems. */
  delayMs: number;
  rounds: number;
  /** The limit far above what the machine does. */
  farAbove: number;
  /** The near limit, as a share of the first unlimited round's rate. */
  nearShare: number;
}

export interface RateLimitCost {
  rows: number;
  delayMs: number;
  /** Median rows/s of each case, and every round's. */
  unlimited: number;
  farAbove: { perSecond: number; rowsPerSecond: number; rounds: number[]; ratio: number };
  near: { perSecond: number; rowsPerSecond: number; rounds: number[]; ofLimit: number };
  unlimitedRounds: number[];
}

export async function rateLimitCost(bench: Bench, sizes: RateLimitSizes): Promise<RateLimitCost> {
  const { rows, delayMs, rounds, farAbove, nearShare } = sizes;
  const unlimited: number[] = [];
  const far: number[] = [];
  const near: number[] = [];
  let nearLimit = 0;
  const run = async (name: string, limit: number | undefined) => {
    await bench.freshUsers(rows);
    const env = { PROCESS_DELAY_MS: String(delayMs), RATE_LIMIT_PER_S: limit === undefined ? "off" : String(limit) };
    // each limited run starts with a bucket of its own, full, as a job's first run would
    await bench.pool.query("DELETE FROM batch_rate_limits");
    const ran = await bench.process(name, env);
    return round(ran.rows / ran.seconds);
  };
  for (let r = 1; r <= rounds; r++) {
    unlimited.push(await run(`rate-off-${r}`, undefined));
    nearLimit ||= Math.round((unlimited[0] as number) * nearShare);
    far.push(await run(`rate-far-${r}`, farAbove));
    near.push(await run(`rate-near-${r}`, nearLimit));
  }
  const unlimitedMedian = median(unlimited);
  const farMedian = median(far);
  const nearMedian = median(near);
  return {
    rows,
    delayMs,
    unlimited: unlimitedMedian,
    unlimitedRounds: unlimited,
    farAbove: {
      perSecond: farAbove,
      rowsPerSecond: farMedian,
      rounds: far,
      ratio: round(farMedian / unlimitedMedian, 3),
    },
    near: { perSecond: nearLimit, rowsPerSecond: nearMedian, rounds: near, ofLimit: round(nearMedian / nearLimit, 3) },
  };
}
