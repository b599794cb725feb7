import type { Run } from "../runs/model";
import { formatCount } from "./format";
import { printable } from "./printable";

/** What `npm start` reports when the run ends: one JSON line for scripts, or a few lines for a person. */
export interface RunSummary {
  batch: string;
  run: number;
  status: string;
  total: number;
  completed: number;
  failed: number;
  seconds: number;
  rowsPerSecond: number;
  phases: { generateSeconds: number; importSeconds: number };
}

export function summarizeRun(run: Run, phases: RunSummary["phases"]): RunSummary {
  const seconds = run.completedAt ? Math.max((run.completedAt.getTime() - run.startedAt.getTime()) / 1000, 0.001) : 0;
  return {
    batch: run.name,
    run: run.id,
    status: run.status,
    total: run.totalRecords,
    completed: run.completedRecords,
    failed: run.failedRecords,
    seconds: Math.round(seconds * 100) / 100,
    rowsPerSecond: Math.round((run.completedRecords + run.failedRecords) / seconds),
    phases,
  };
}

export function describeSummary(summary: RunSummary): string {
  const { phases } = summary;
  return [
    `batch run ${summary.run} "${printable(summary.batch)}": ${summary.status}`,
    `  rows: ${formatCount(summary.completed)} completed, ${formatCount(summary.failed)} failed, of ${formatCount(summary.total)}`,
    `  time: ${summary.seconds} s processing (${formatCount(summary.rowsPerSecond)} rows/s); ` +
      `generate ${phases.generateSeconds} s, import ${phases.importSeconds} s`,
  ].join("\n");
}
