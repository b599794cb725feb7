/// <reference lib="dom" />
import type { RunEvent } from "../../src/runs/model";
import { describeSubset } from "../../src/runs/subset";
import type { RunReport } from "../../src/status/read-status";
import type { RunWorker } from "../../src/status/read-workers";
import { canaryLine } from "../../src/status/render";
import {
  element,
  fillTable,
  formatCount,
  formatSeconds,
  formatTime,
  type Json,
  longText,
  poll,
  requestJson,
  statusBadge,
  TOKEN_KEY,
  tokenHeaders,
} from "./common";
import { ProgressChart, type ProgressPoint } from "./progress-chart";
import { RunControls } from "./run-controls";

/** One run, live: its figures, progress chart, chunks, workers, errors and history, polled every second. */

/** errorsHidden: why its errors were left out (they need a token this request did not carry). */
type Run = Json<Omit<RunReport, "workers"> & { workers: RunWorker[]; errorsHidden?: string }>;

const POLL_MS = 1000;

const runId = Number(location.pathname.split("/").pop());
const byId = (id: string) => document.getElementById(id) as HTMLElement;

function figure(label: string, value: string, id: string): HTMLElement[] {
  return [element("dt", {}, label), element("dd", { id }, value)];
}

function showRun(run: Run): void {
  byId("title").replaceChildren(
    `Batch run ${run.id} `,
    element("q", { id: "run-name" }, run.name),
    " of job ",
    element("span", { id: "run-job" }, run.job),
    " ",
    statusBadge(run.status),
  );
  document.title = `pg-batch: ${run.name}`;
  (byId("progress") as HTMLProgressElement).value = run.percentDone ?? 0;
  const eta = run.waitingSeconds
    ? `${formatSeconds(run.etaSeconds)} (next chunk due in ${formatSeconds(run.waitingSeconds)})`
    : formatSeconds(run.etaSeconds);
  const { throttle, rateLimit } = run;
  // the session holding rows the longest (an application's, idle in transaction), and the rows all hold
  const [held] = run.rowsHeld;
  const heldRows = run.rowsHeld.reduce((sum, chunk) => sum + chunk.rows, 0);
  const canary = canaryLine(run);
  byId("figures").replaceChildren(
    // a run with a canary: its rows, and once it has paused after them, what became of them
    ...(canary ? figure("canary", canary, "canary") : []),
    // what its workers wait on: the signal, its figure against its threshold, since when
    ...(throttle ? figure("throttled", `${throttle.text} since ${formatTime(throttle.since)}`, "throttle") : []),
    ...(held
      ? figure(
          "held by another session",
          `${formatCount(heldRows)} rows, pid ${held.pid}${held.state ? ` (${held.state})` : ""} since ${formatTime(held.since)}`,
          "rows-held",
        )
      : []),
    ...(Object.keys(run.params).length > 0
      ? figure(
          "parameters",
          Object.entries(run.params)
            .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
            .join(", "),
          "params",
        )
      : []),
    // a run over part of the job's rows: which part
    ...(run.subset ? figure("subset", describeSubset(run.subset), "subset") : []),
    ...figure("done", run.percentDone === null ? "–" : `${run.percentDone.toFixed(1)}%`, "percent"),
    ...figure("rows done", `${formatCount(run.completed + run.failed)} / ${formatCount(run.total)}`, "rows"),
    ...figure("completed", formatCount(run.completed), "completed"),
    ...figure("failed", formatCount(run.failed), "failed"),
    ...figure("retrying", formatCount(run.retrying), "retrying"),
    ...figure("pending", formatCount(run.pending), "pending"),
    ...figure("round", String(run.round), "round"),
    ...figure("rows/s", formatCount(run.rowsPerSecond), "rate"),
    // the job's limit across every worker, and how long this run's chunks have waited for it
    ...(rateLimit
      ? figure(
          "rate limit",
          `${rateLimit.perSecond}/s (burst ${rateLimit.burst}), waited ${run.rateLimitWaitedSeconds.toFixed(1)} s`,
          "rate-limit",
        )
      : []),
    ...figure("ETA", eta, "eta"),
    ...figure("started", formatTime(run.startedAt), "started"),
    ...figure("ended", formatTime(run.completedAt), "ended"),
  );
  const { chunks } = run;
  fillTable(
    byId("chunks"),
    ["state", "chunks"],
    [
      ["done", chunks.done],
      ["running", chunks.running],
      ["waiting", chunks.waiting],
      ["retrying (backing off)", chunks.retrying],
      ["failed", chunks.failed],
      ["cancelled", chunks.cancelled],
      ["total", chunks.total],
    ].map(([state, count]) => [state, formatCount(count as number)]),
    [1],
  );
  fillTable(
    byId("workers"),
    ["worker", "running chunks", "rows", "last write", "heartbeat"],
    run.workers.map((worker) => [
      worker.worker,
      worker.runningChunks,
      formatCount(worker.rows),
      formatTime(worker.lastWrite),
      worker.heartbeat ? formatTime(worker.heartbeat) : "exited",
    ]),
    [1, 2],
  );
  fillTable(
    byId("errors"),
    ["failed attempts", "message", "last seen"],
    run.errors.map((error) => [formatCount(error.occurrences), longText(error.message), formatTime(error.lastSeen)]),
    [0],
    run.errorsHidden ?? "no failed attempt",
  );
}

/** A field for the token that shows row errors, where no control panel has one already. */
function errorsTokenField(): HTMLElement {
  const input = element("input", { id: "read-token" });
  input.type = "password";
  input.autocomplete = "off";
  input.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
  input.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, input.value.trim()));
  return element("label", {}, "Token for row errors ", input);
}

/** "done 120/1,000, failed 3, retrying 5" and the event's own counts, as `batch history` says it. */
function describeCounts(counts: Record<string, number>): string {
  const { total = 0, completed = 0, failed = 0, retryable = 0, ...own } = counts;
  const run = `done ${formatCount(completed + failed)}/${formatCount(total)}, failed ${failed}, retrying ${retryable}`;
  return [run, ...Object.entries(own).map(([key, value]) => `${key} ${value}`)].join(", ");
}

function showEvents(events: Json<RunEvent>[], total: number): void {
  fillTable(
    byId("events"),
    ["at", "event", "round", "chunk", "by", "counts", "detail"],
    events.map((event) => [
      formatTime(event.at),
      event.event,
      event.round,
      event.chunkNo,
      event.actor,
      describeCounts(event.counts),
      longText(event.detail),
    ]),
  );
  if (total > events.length) byId("events").append(element("caption", {}, `newest ${events.length} of ${total}`));
}

async function start(): Promise<void> {
  const chart = new ProgressChart(byId("chart"));
  const dashboard = await requestJson<{ controls: boolean; errorsNeedToken: boolean }>("/api/dashboard");
  const hasControls = dashboard.controls;
  if (dashboard.errorsNeedToken && !hasControls) byId("errors-access").replaceChildren(errorsTokenField());
  const controls = hasControls
    ? new RunControls(byId("controls"), runId, () => void refresh().catch(() => undefined))
    : undefined;
  async function refresh(): Promise<void> {
    const [{ run }, { samples }, { events, total }] = await Promise.all([
      requestJson<{ run: Run }>(`/api/runs/${runId}`, { headers: tokenHeaders() }),
      requestJson<{ samples: ProgressPoint[] }>(`/api/runs/${runId}/samples`),
      requestJson<{ events: Json<RunEvent>[]; total: number }>(`/api/runs/${runId}/events`),
    ]);
    showRun(run);
    chart.show(samples);
    showEvents(events, total);
    controls?.update(run);
  }
  poll(POLL_MS, refresh);
}

void start().catch((error: Error) => {
  byId("title").textContent = `Batch run ${runId}: ${error.message}`;
});
