import path from "node:path";
import type { BesideCase, TwinCase } from "../../bench/beside-app";
import { type Finished, lastJsonLine, ROOT, run } from "./processes";

/** The parts of the bench's report that test/system/bench*.test.ts read. */
export interface BenchReport extends Record<string, unknown> {
  atScale: Record<string, unknown>;
  ioBound: { cases: ({ delayMs: number } & Record<string, unknown>)[] };
  scaleOut: { rows: ({ processes: number } & Record<string, unknown>)[] };
  peers: Record<string, Record<string, unknown>>;
  besideApp: { cases: BesideCase[]; sqlTwin: TwinCase } & Record<string, unknown>;
  sectionSeconds: Record<string, number>;
}

/** A quick bench's sections, each starting worker processes and commands: minutes on a busy machine. */
export const BENCH_MS = 360_000;

/** `npm run bench -- ARGS` on a scratch database of the tests' server; exits 0 with its report. */
export async function runBench(args: string[]): Promise<{ result: Finished; report: BenchReport }> {
  const result = await run(process.execPath, [path.join(ROOT, "dist/bench/bench.js"), ...args], {
    DATABASE_URL: process.env.TEST_ADMIN_DATABASE_URL as string,
  });
  expect({ code: result.code, stderr: result.code === 0 ? "" : result.stderr }).toEqual({ code: 0, stderr: "" });
  return { result, report: lastJsonLine(result.stdout) as BenchReport };
}
