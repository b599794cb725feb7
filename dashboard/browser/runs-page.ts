/// <reference lib="dom" />
import type { ScheduleShown } from "../../src/status/read-schedules";
import type { RunProgress } from "../../src/status/read-status";
import type { StartableJob } from "../control-api";
import {
  element,
  fillTable,
  formatCount,
  formatSeconds,
  formatTime,
  type Json,
  poll,
  requestJson,
  statusBadge,
} from "./common";
import { StartForm } from "./start-form";

/**
 * Every run (the newest 50), those still going first, and the scheduled jobs, polled every two
 * seconds; a form to start a run.
 */

const POLL_MS = 2000;

function showRuns(runs: Json<RunProgress>[]): void {
  const table = document.getElementById("runs") as HTMLElement;
  fillTable(
    table,
    ["id", "name", "job", "status", "round", "done", "rows", "rows/s", "ETA", "started", "ended"],
    runs.map((run) => [
      run.id,
      element("a", { href: `/runs/${run.id}`, className: "text" }, run.name),
      run.job,
      run.throttled ? element("span", {}, statusBadge(run.status), " throttled") : statusBadge(run.status),
      run.round,
      run.percentDone === null ? "–" : `${run.percentDone.toFixed(1)}%`,
      `${formatCount(run.completed + run.failed)} / ${formatCount(run.total)}`,
      formatCount(run.rowsPerSecond),
      formatSeconds(run.etaSeconds),
      formatTime(run.startedAt),
      formatTime(run.completedAt),
    ]),
    [0, 4, 5, 6, 7, 8],
    "no batch runs yet (start one with: npm run seed -- enqueue --batch-name NAME)",
  );
}

/** A tick's run, linked, or what the tick did instead. */
function tickShown(tick: Json<ScheduleShown>["lastTicks"][number]): HTMLElement {
  const when = `${formatTime(tick.tick)} `;
  if (tick.runId === null) return element("span", {}, when, tick.outcome);
  return element("span", {}, when, element("a", { href: `/runs/${tick.runId}`, className: "text" }, tick.run ?? ""));
}

function showSchedules(schedules: Json<ScheduleShown>[]): void {
  (document.getElementById("schedules-section") as HTMLElement).hidden = schedules.length === 0;
  fillTable(
    document.getElementById("schedules") as HTMLElement,
    ["job", "cron", "time zone", "overlap", "catch-up", "paused", "next tick", "next tick (UTC)", "last ticks"],
    schedules.map((schedule) => [
      schedule.job,
      schedule.cron,
      schedule.timeZone,
      schedule.overlap,
      schedule.catchUp,
      schedule.paused ? `paused by ${schedule.pausedBy ?? "?"}` : "no",
      schedule.nextTickInZone ?? "–",
      formatTime(schedule.nextTick),
      element(
        "span",
        {},
        ...schedule.lastTicks.flatMap((tick, i) => (i ? [", ", tickShown(tick)] : [tickShown(tick)])),
      ),
    ]),
    [],
    "",
  );
}

poll(POLL_MS, async () => {
  const { runs, schedules } = await requestJson<{ runs: Json<RunProgress>[]; schedules: Json<ScheduleShown>[] }>(
    "/api/runs",
  );
  showRuns(runs);
  showSchedules(schedules);
});

/** The start form, where the dashboard has controls. */
async function showStartForm(): Promise<void> {
  const { controls } = await requestJson<{ controls: boolean }>("/api/dashboard");
  if (!controls) return;
  const { jobs } = await requestJson<{ jobs: StartableJob[] }>("/api/jobs");
  new StartForm(document.getElementById("start-form") as HTMLElement, jobs);
}

void showStartForm().catch(() => undefined);
