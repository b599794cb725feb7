import { describeSubset } from "../runs/subset";
import { formatCount } from "../terminal/format";
import { table } from "../terminal/output";
import { printable } from "../terminal/printable";
import type { ScheduleShown } from "./read-schedules";
import type { RunProgress, RunReport } from "./read-status";

const number = (value: number | null) => (value === null ? "-" : formatCount(value));

function duration(seconds: number | null): string {
  if (seconds === null) return "-";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

export function progressBar(percent: number | null, width = 30): string {
  const filled = Math.min(Math.max(Math.round(((percent ?? 0) / 100) * width), 0), width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(percent ?? 0).toFixed(1).padStart(5)}%`;
}

export function renderOverview(runs: RunProgress[]): string {
  if (runs.length === 0) return "no batch runs yet (start one with: seed enqueue --job JOB --batch-name NAME)";
  return table(
    ["id", "batch", "job", "status", "round", "done", "total", "failed", "rows/s", "eta"],
    runs.map((run) => [
      String(run.id),
      run.name,
      run.job,
      run.throttled ? `${run.status}, throttled` : run.status,
      String(run.round),
      run.percentDone === null ? "-" : `${run.percentDone.toFixed(1)}%`,
      number(run.total),
      number(run.failed),
      number(run.rowsPerSecond),
      duration(run.etaSeconds),
    ]),
  );
}

const utcMinute = (at: Date) => `${at.toISOString().slice(0, 16).replace("T", " ")}Z`;

/** The scheduled jobs, then their newest ticks; nothing when no job has a schedule. */
export function renderSchedules(schedules: ScheduleShown[]): string {
  if (schedules.length === 0) return "";
  const jobs = table(
    ["schedule", "cron", "time zone", "overlap", "catch-up", "paused", "next tick", "next tick (UTC)"],
    schedules.map((schedule) => [
      schedule.job,
      schedule.cron,
      schedule.timeZone,
      schedule.queuedTick ? `${schedule.overlap} (${utcMinute(schedule.queuedTick)} queued)` : schedule.overlap,
      schedule.catchUp,
      schedule.paused ? `yes, by ${printable(schedule.pausedBy ?? "?")}` : "no",
      schedule.nextTickInZone ?? "-",
      schedule.nextTick ? utcMinute(schedule.nextTick) : "-",
    ]),
  );
  const ticks = schedules.flatMap((schedule) =>
    schedule.lastTicks.map((tick) => [
      schedule.job,
      utcMinute(tick.tick),
      tick.outcome,
      tick.run === null ? "-" : printable(tick.run),
      tick.missed > 0 ? String(tick.missed) : "",
    ]),
  );
  if (ticks.length === 0) return jobs;
  return `${jobs}\n\n${table(["schedule", "tick", "outcome", "run", "missed before"], ticks)}`;
}

/** "ETA 1m05s", and what the run waits for while nothing of it runs. */
function eta(report: RunProgress): string {
  const waiting = report.waitingSeconds === null ? "" : ` (next chunk due in ${duration(report.waitingSeconds)})`;
  return `ETA ${duration(report.etaSeconds)}${waiting}`;
}

/** "throttled: replica lag 12.3 s over 5 s since 16:50:01" (UTC, as the run's other times), and how many workers wait. */
function throttleLine({ throttle }: RunReport): string | undefined {
  if (!throttle) return undefined;
  const waiting = throttle.workers > 1 ? `, ${throttle.workers} workers waiting` : "";
  return `throttled: ${throttle.text} since ${throttle.since.toISOString().slice(11, 19)}${waiting}`;
}

/** "rows held by another session: 1 row of chunk 2 by pid 4242 (idle in transaction) since 16:50:01" (UTC). */
function rowsHeldLines({ rowsHeld }: RunReport): string[] {
  return rowsHeld.map((held) => {
    const rows = held.rows === 1 ? "1 row" : `${number(held.rows)} rows`;
    const state = held.state ? ` (${held.state})` : "";
    return `rows held by another session: ${rows} of chunk ${held.chunkNo} by pid ${held.pid}${state} since ${held.since.toISOString().slice(11, 19)}`;
  });
}

/** One line, for logs and non-interactive watching. */
export function renderLine(report: RunReport): string {
  const throttle = throttleLine(report);
  const held = report.rowsHeld.reduce((sum, chunk) => sum + chunk.rows, 0);
  return printable(
    `run ${report.id} ${report.status} ${progressBar(report.percentDone, 20)} ` +
      `${number(report.completed + report.failed)}/${number(report.total)} rows, ` +
      `${number(report.rowsPerSecond)} rows/s, ${eta(report)}${throttle ? `, ${throttle}` : ""}` +
      `${held > 0 ? `, ${number(held)} rows held by another session` : ""}`,
  );
}

/**
 * The errors are failed attempts: a row that failed and then completed on a retry counts in
 * them too. The heading says what became of the rows.
 */
function errorsHeading(report: RunReport): string {
  if (report.failed === 0 && report.retrying === 0) {
    return "failed attempts, by message (all retried: no row failed for good):";
  }
  return `failed attempts, by message (${number(report.failed)} rows failed for good, ${number(report.retrying)} to retry):`;
}

/** The job's rate limit, and how long this run's chunks and all the job's have waited for it (summed over chunks). */
function rateLimitLines(report: RunReport): string[] {
  const limit = report.rateLimit;
  if (!limit) return [];
  return [
    `rate limit ${limit.perSecond.toLocaleString("en-US")} rows/s across every worker ` +
      `(burst ${limit.burst.toLocaleString("en-US")}): ` +
      `this run's chunks waited ${report.rateLimitWaitedSeconds.toFixed(1)} s for it, ` +
      `job ${report.job}'s ${limit.waitedSeconds.toFixed(1)} s in all`,
  ];
}

/** Where the run's canary is: running, or ended and the run paused after it (or resumed since). */
export function canaryLine({
  canary,
  status,
}: {
  canary: { rows: number; ended: { rows: number; failed: number } | null } | null;
  status: string;
}): string | undefined {
  if (!canary) return undefined;
  if (!canary.ended) return `canary: the first ${number(canary.rows)} rows, then the run pauses`;
  const what = `${number(canary.ended.rows)} rows, ${number(canary.ended.failed)} failed`;
  return status === "paused"
    ? `paused after its canary: ${what}; batch resume goes on with the rest`
    : `canary: ${what}; the run went on after it`;
}

/** "params: priceChangePct=10, region="eu"", each value as JSON. */
function paramsLines({ params }: RunReport): string[] {
  const entries = Object.entries(params);
  if (entries.length === 0) return [];
  return [`params: ${entries.map(([name, value]) => `${name}=${JSON.stringify(value)}`).join(", ")}`];
}

/** "subset: keys 100 to 200": only where the run takes part of the job's rows. */
const subsetLines = ({ subset }: RunReport): string[] => (subset ? [`subset: ${describeSubset(subset)}`] : []);

export function renderReport(report: RunReport): string {
  const { chunks } = report;
  const throttle = throttleLine(report);
  const canary = canaryLine(report);
  const lines = [
    `batch run ${report.id} "${report.name}" of job ${report.job}: ${report.status} (round ${report.round})`,
    ...paramsLines(report),
    ...subsetLines(report),
    ...(canary ? [canary] : []),
    ...(throttle ? [throttle] : []),
    ...rowsHeldLines(report),
    `${progressBar(report.percentDone)}  ${number(report.completed + report.failed)} / ${number(report.total)} rows`,
    `completed ${number(report.completed)}  failed ${number(report.failed)}  retrying ${number(report.retrying)}  pending ${number(report.pending)}`,
    `rate ${number(report.rowsPerSecond)} rows/s  ${eta(report)}  started ${report.startedAt.toISOString()}`,
    ...rateLimitLines(report),
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
    lines.push(errorsHeading(report));
    for (const error of report.errors) lines.push(`  ${number(error.occurrences).padStart(9)}  ${error.message}`);
  }
  // names, workers and messages are data: none may break a line or move the cursor
  return lines.map(printable).join("\n");
}
