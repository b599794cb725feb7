import users from "../jobs/users";
import type { DelaySpread } from "../src/config";
import { type Bench, round } from "./harness";
import { type Phases, phases, sliceCommits } from "./steady-state";

/**
 * Processing with simulated I/O (PROCESS_DELAY_MS per record) in one worker process with default
 * settings, against the records-in-flight bound: WORKERS × ROW_CONCURRENCY records in flight,
 * each taking `delayMs`, make at most slots × 1000 / delayMs rows per second. Reported whole
 * (spawn to exit, as the other processing figures) and in phases (bench/steady-state.ts).
 */

export interface IoCase {
  /** A record's time in flight; with `spread` "exponential", its mean (PROCESS_DELAY_SPREAD). */
  delayMs: number;
  spread?: DelaySpread;
  rows: number;
  /** The target where it sets one; the rest are reported against the same bound. */
  target?: number;
}

export interface IoResult extends Phases {
  delayMs: number;
  spread: DelaySpread;
  recordsInFlight: number;
  bound: number;
  steadyRatio: number;
  wallRatio: number;
  target: number | undefined;
}

export function recordsInFlight(workers: number): number {
  return workers * users.defaults.rowConcurrency;
}

export async function ioBound(bench: Bench, cases: IoCase[], workers: number): Promise<IoResult[]> {
  const results: IoResult[] = [];
  const slots = recordsInFlight(workers);
  for (const { delayMs, spread = "fixed", rows, target } of cases) {
    await bench.freshUsers(rows);
    const name = `io-${delayMs}ms-${spread}`;
    const env = { PROCESS_DELAY_MS: String(delayMs), PROCESS_DELAY_SPREAD: spread, LOG_LEVEL: "debug" };
    const ran = await bench.process(name, env);
    const measured = phases(sliceCommits(ran.stderr), ran.startedAt, ran.endedAt);
    if (measured.rows !== ran.rows) throw new Error(`${name}: slices logged ${measured.rows} of ${ran.rows} rows`);
    const bound = (slots * 1000) / delayMs;
    results.push({
      delayMs,
      spread,
      recordsInFlight: slots,
      bound,
      ...measured,
      steadyRatio: round(measured.steadyRowsPerSecond / bound, 2),
      wallRatio: round(measured.wallRowsPerSecond / bound, 2),
      target,
    });
  }
  return results;
}
