import { table } from "../cli-output";
import type { RunProgress, RunReport } from "./read-status";

const number = (value: number | null) => (value === null ? "-" : Math.round(value).toLocaleString("en-US"));

function duration(seconds: number | null): string {
  if (seconds === null) return "-";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

export function progressBar(percent: number | null, width = 30): string {
  const filled = Math.round(((percent ?? 0) / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(percent ?? 0).toFixed(1).padStart(5)}%`;
}

export function renderOverview(runs: RunProgress[]): string {
  if (runs.length === 0) return "no batch runs yet (start one with: seed enqueue --batch-name NAME)";
  return table(
    ["id", "batch", "status", "round", "done", "total", "failed", "rows/s", "eta"],
    runs.map((run) => [
      String(run.id),
      run.name,
      run.status,
      String(run.round),
      run.percentDone === null ? "-" : `${run.percentDone.toFixed(1)}%`,
      number(run.total),
      number(run.failed),
      number(run.rowsPerSecond),
      duration(run.etaSeconds),
    ]),
  );
}

/** One line, for logs and non-interactive watching. */
export function renderLine(report: RunReport): string {
  return (
    `run ${report.id} ${report.status} ${progressBar(report.percentDone, 20)} ` +
    `${number(report.completed + report.failed)}/${number(report.total)} rows, ` +
    `${number(report.rowsPerSecond)} rows/s, ETA ${duration(report.etaSeconds)}`
  );
}

export function renderReport(report: RunReport): string {
  const { chunks } = report;
  const lines = [
    `batch run ${report.id} "${report.name}": ${report.status} (round ${report.round})`,
    `${progressBar(report.percentDone)}  ${number(report.completed + report.failed)} / ${number(report.total)} rows`,
    `completed ${number(report.completed)}  failed ${number(report.failed)}  retrying ${number(report.retrying)}  pending ${number(report.pending)}`,
    `rate ${number(report.rowsPerSecond)} rows/s  ETA ${duration(report.etaSeconds)}  started ${report.startedAt.toISOString()}`,
    `chunks: ${chunks.total} in this round, ${chunks.done} done, ${chunks.running} running, ${chunks.waiting} waiting, ` +
      `${chunks.retrying} retrying, ${chunks.failed} failed, ${chunks.cancelled} cancelled`,
  ];
  if (report.workers.length > 0) {
    lines.push(
      `workers: ${report.workers
        .map((w) => `${w.worker} (${w.runningChunks} running, ${number(w.rows)} rows)`)
        .join(", ")}`,
    );
  }
  if (report.errors.length > 0) {
    lines.push("errors:");
    for (const error of report.errors) lines.push(`  ${number(error.attempts).padStart(9)}  ${error.message}`);
  }
  return lines.join("\n");
}
