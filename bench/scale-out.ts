import { type Bench, mustSucceed, round } from "./harness";
import { type Phases, phases, sliceCommits } from "./steady-state";

/**
 * Scale-out: 1, 2, 4... worker processes (`graphile-worker --once`, default settings otherwise)
 * draining one run together at PROCESS_DELAY_MS, `rowsPerProcess` rows per process, CHUNK_SIZE
 * lowered so that every process has several chunks per slot. Throughput against N times one
 * process's: wall (first spawn to last exit) and steady (bench/steady-state.ts, all processes'
 * slices together).
 */

export interface ScaleOutOptions {
  processes: number[];
  rowsPerProcess: number;
  delayMs: number;
  chunkSize: number;
}

export interface ScaleOutRow extends Phases {
  processes: number;
  /** Against N × the one-process figure (1 for N = 1). */
  wallScaling: number;
  steadyScaling: number;
}

export async function scaleOut(bench: Bench, options: ScaleOutOptions): Promise<ScaleOutRow[]> {
  const rows: ScaleOutRow[] = [];
  let one: Phases | undefined;
  for (const n of options.processes) {
    await bench.freshUsers(n * options.rowsPerProcess);
    const name = `scale-${n}`;
    const env = {
      PROCESS_DELAY_MS: String(options.delayMs),
      CHUNK_SIZE: String(options.chunkSize),
      LOG_LEVEL: "debug",
    };
    const total = await bench.enqueue(name, env);
    const ran = await Promise.all(Array.from({ length: n }, () => bench.worker(env)));
    for (const [i, r] of ran.entries()) mustSucceed(`worker ${i + 1} of ${n}`, r);
    await bench.mustHaveCompleted(name);
    const measured = phases(
      ran.flatMap((r) => sliceCommits(r.stderr)),
      Math.min(...ran.map((r) => r.startedAt)),
      Math.max(...ran.map((r) => r.endedAt)),
    );
    if (measured.rows !== total) throw new Error(`${name}: slices logged ${measured.rows} of ${total} rows`);
    one ??= measured;
    rows.push({
      processes: n,
      ...measured,
      wallScaling: round(measured.wallRowsPerSecond / (n * one.wallRowsPerSecond), 2),
      steadyScaling: round(measured.steadyRowsPerSecond / (n * one.steadyRowsPerSecond), 2),
    });
  }
  return rows;
}
