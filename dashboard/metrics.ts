import { Counter, Gauge, Registry } from "prom-client";
import type { WithClient } from "../src/db/pool";
import { ENDED_RUN_STATUSES, type RunStatus } from "../src/runs/model";
import { type RunTotals, readRunTotals } from "../src/status/read-totals";
import type { Route } from "./routes";

/**
 * The dashboard's /metrics: the runs and their backlog as the database holds them, read at each
 * scrape. Worker pods started with --once may end before Prometheus scrapes them; these figures
 * do not depend on any pod, so the alerts on a failed run or on a backlog no pod works on read them.
 */

const ENDED = [...ENDED_RUN_STATUSES];

/** A registry of its own for each scrape: two scrapes at once never mix their figures. */
function exposition(totals: RunTotals): Registry {
  const registry = new Registry();
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
  const chunks = new Gauge({
    name: "batch_backlog_chunks",
    help: "Chunks and steps a worker started now could take up, by job: what KEDA's trigger reads (batch_backlog_by_job)",
    labelNames: ["job"],
    registers: [registry],
  });
  const rows = new Gauge({
    name: "batch_backlog_rows",
    help: "Rows left in those chunks (at least 1 each), by job",
    labelNames: ["job"],
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
  return registry;
}

export function metricsRoutes(db: WithClient): Route[] {
  return [
    {
      method: "GET",
      path: /^\/metrics$/,
      answer: async () => {
        const registry = exposition(await db(readRunTotals));
        return { status: 200, contentType: registry.contentType, body: await registry.metrics() };
      },
    },
  ];
}
