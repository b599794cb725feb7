import users from "../jobs/users";
import type { DelaySpread } from "../src/processing/fault-injection";
import { type Bench, round } from "./harness";
import { type Phases, phases, sliceCommits } from "./steady-state";

/**
 * Processing with simulated I/O (PROCESS_DELAY_MS per record) in one worker process with default
 * settings, against the records-in-flight bound: WORKERS × ROW_CONCURRENCY records in flight,
 * each taking `delayMs`, make at most slots × 1000 / delayMs rows per second. Reported whole
 * (spawn to exit, as the other processing figures) and in phases (bench/steady-state.ts), over
 * rounds as many as processing's (a single 2 ms run varies by several hundredths).
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
  /** Every round's whole-run ratio, in the order run. */
  roundWallRatios: number[];
  /** The target, for the whole run (start-up and tail included). */
  target: number | undefined;
}

export function recordsInFlight(workers: number): number {
  return workers * users.defaults.rowConcurrency;
}

/** One worker process over a fresh table of the case's rows, in phases. */
async function ioRun(bench: Bench, { delayMs, spread = "fixed", rows }: IoCase, name: string): Promise<Phases> {
  await bench.freshUsers(rows);
  const env = { PROCESS_DELAY_MS: String(delayMs), PROCESS_DELAY_SPREAD: spread, LOG_LEVEL: "debug" };
  const ran = await bench.process(name, env);
  const measured = phases(sliceCommits(ran.stderr), ran.startedAt, ran.endedAt);
  if (measured.rows !== ran.rows) throw new Error(`${name}: slices logged ${measured.rows} of ${ran.rows} rows`);
  return measured;
}

/**
 * Each case `rounds` times, the cases interleaved round by round; reported by its median round
 * (by whole-run pace: a round's phases stay together), with every round's whole-run ratio.
 */
export async function ioBound(bench: Bench, cases: IoCase[], workers: number, rounds: number): Promise<IoResult[]> {
  const slots = recordsInFlight(workers);
  const runs: Phases[][] = cases.map(() => []);
  for (let r = 1; r <= rounds; r++) {
    for (const [i, c] of cases.entries()) {
      runs[i]?.push(await ioRun(bench, c, `io-${c.delayMs}ms-${c.spread ?? "fixed"}-${r}`));
    }
  }
  return cases.map(({ delayMs, spread = "fixed", target }, i) => {
    const bound = (slots * 1000) / delayMs;
    const all = runs[i] ?? [];
    const byPace = [...all].sort((a, b) => a.wallRowsPerSecond - b.wallRowsPerSecond);
    const measured = byPace[Math.floor(byPace.length / 2)] as Phases;
    return {
      delayMs,
      spread,
      recordsInFlight: slots,
      bound,
      ...measured,
      steadyRatio: round(measured.steadyRowsPerSecond / bound, 2),
      wallRatio: round(measured.wallRowsPerSecond / bound, 2),
      roundWallRatios: all.map((run) => round(run.wallRowsPerSecond / bound, 2)),
      target,
    };
  });
}
