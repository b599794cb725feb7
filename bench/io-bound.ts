import users from "../jobs/users";
import { type Bench, round } from "./harness";
import { type Phases, phases, sliceCommits } from "./steady-state";

/**
 * Processing with simulated I/O (PROCESS_DELAY_MS per record) in one worker process with default
 * settings, against the records-in-flight bound: WORKERS × ROW_CONCURRENCY records in flight,
 * each taking `delayMs`, make at most slots × 1000 / delayMs rows per second. Reported whole
 * (spawn to exit, as the other processing figures) and in phases (bench/steady-state.ts).
 */

export interface IoCase {
  delayMs: number;
  rows: number;
  target: number;
}

export interface IoResult extends Phases {
  delayMs: number;
  recordsInFlight: number;
  bound: number;
  steadyRatio: number;
  wallRatio: number;
  target: number;
}

export function recordsInFlight(workers: number): number {
  return workers * users.defaults.rowConcurrency;
}

export async function ioBound(bench: Bench, cases: IoCase[], workers: number): Promise<IoResult[]> {
  const results: IoResult[] = [];
  const slots = recordsInFlight(workers);
  for (const { delayMs, rows, target } of cases) {
    await bench.freshUsers(rows);
    const name = `io-${delayMs}ms`;
    const ran = await bench.process(name, { PROCESS_DELAY_MS: String(delayMs), LOG_LEVEL: "debug" });
    const measured = phases(sliceCommits(ran.stderr), ran.startedAt, ran.endedAt);
    if (measured.rows !== ran.rows) throw new Error(`${name}: slices logged ${measured.rows} of ${ran.rows} rows`);
    const bound = (slots * 1000) / delayMs;
    results.push({
      delayMs,
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
