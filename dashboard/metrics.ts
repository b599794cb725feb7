import { Counter, Gauge, Registry } from "prom-client";
import type { WithClient } from "../src/db/pool";
import { ENDED_RUN_STATUSES, type RunStatus } from "../src/runs/model";
import { TICK_OUTCOMES } from "../src/runs/schedules";
import { readScheduleTotals, type ScheduleTotals } from "../src/status/read-schedules";
import { type RunTotals, readRunTotals } from "../src/status/read-totals";
import type { Route } from "./routes";

/**
 * The dashboard's /metrics: the runs and their backlog, and the schedules and their ticks, as the
 * database holds them, read at each scrape. Worker pods started with --once may end before
 * Prometheus scrapes them; these figures do not depend on any pod, so the alerts on a failed run,
 * on a backlog no pod works on or on a tick no pod decides read them.
 */

const ENDED = [...ENDED_RUN_STATUSES];
/** A queued tick's record becomes what it did once its run starts: counted as a gauge, not among the ticks decided. */
const DECIDED = TICK_OUTCOMES.filter((outcome) => outcome !== "queued");

const seconds = (at: Date) => at.getTime() / 1000;

/** A registry of its own for each scrape: two scrapes at once never mix their figures. */
function exposition(totals: RunTotals, schedules: ScheduleTotals[]): Registry {
  const registry = new Registry();
  const jobGauge = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["job"], registers: [registry] });
  const ended = new Counter({
    name: "batch_runs_ended_total",
    help: "Runs ended, by job and how: completed, failed, cancelled (counted in the database; 0 for each from a job's first run on)",
    labelNames: ["job", "status"],
    registers: [registry],
  });
  const open = new Gauge({
    name: "batch_runs_open",
    help: "Runs not ended, by job and status: pending, running, paused, cancelling",
    labelNames: ["job", "status"],
    registers: [registry],
  });
  const chunks = jobGauge(
    "batch_backlog_chunks",
    "Chunks and steps a worker started now could take up, by job: what KEDA's trigger reads (batch_backlog_by_job)",
  );
  const rows = jobGauge("batch_backlog_rows", "Rows left in those chunks (at least 1 each), by job");
  const dueTick = jobGauge(
    "batch_schedule_next_tick_timestamp_seconds",
    "A scheduled job's next tick to decide, the first after the last decided (Unix time): in the past while a due tick waits for a worker",
  );
  const lastTick = jobGauge(
    "batch_schedule_last_tick_timestamp_seconds",
    "A scheduled job's latest tick decided (Unix time); absent before its first",
  );
  const paused = jobGauge(
    "batch_schedule_paused",
    "1 while a scheduled job's schedule is paused (batch schedule pause): its ticks start nothing",
  );
  const queued = jobGauge(
    "batch_schedule_tick_queued",
    "1 while a scheduled job's tick waits for its active run to end (overlap queue)",
  );
  const ticks = new Counter({
    name: "batch_schedule_ticks_total",
    help: "Ticks decided, by job and outcome: started, skipped-overlap, skipped-missed, skipped-paused, skipped-nothing (counted in the database; 0 for each from the schedule's start)",
    labelNames: ["job", "outcome"],
    registers: [registry],
  });
  // every ended status is there from a job's first run on, so a rate sees its first failure
  for (const job of new Set(totals.runs.map((run) => run.job))) {
    for (const status of ENDED) ended.inc({ job, status }, 0);
  }
  for (const { job, status, runs } of totals.runs) {
    if (ENDED_RUN_STATUSES.has(status as RunStatus)) ended.inc({ job, status }, runs);
    else open.set({ job, status }, runs);
  }
  for (const { job, rowsLeft, chunksLeft } of totals.backlog) {
    chunks.set({ job }, chunksLeft);
    rows.set({ job }, rowsLeft);
  }
  for (const schedule of schedules) {
    const { job } = schedule;
    if (schedule.dueTick) dueTick.set({ job }, seconds(schedule.dueTick));
    if (schedule.lastTick) lastTick.set({ job }, seconds(schedule.lastTick));
    paused.set({ job }, schedule.paused ? 1 : 0);
    queued.set({ job }, schedule.queued ? 1 : 0);
    for (const outcome of DECIDED) ticks.inc({ job, outcome }, schedule.ticks[outcome] ?? 0);
  }
  return registry;
}

export function metricsRoutes(db: WithClient): Route[] {
  return [
    {
      method: "GET",
      path: /^\/metrics$/,
      answer: async () => {
        const { totals, schedules } = await db(async (client) => ({
          totals: await readRunTotals(client),
          schedules: await readScheduleTotals(client),
        }));
        const registry = exposition(totals, schedules);
        return { status: 200, contentType: registry.contentType, body: await registry.metrics() };
      },
    },
  ];
}
