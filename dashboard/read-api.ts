import type { WithClient } from "../src/db/pool";
import { ENDED_RUN_STATUSES, type RunStatus } from "../src/runs/model";
import { readNewestEvents } from "../src/status/read-events";
import { readProgressPoints } from "../src/status/read-samples";
import { readSchedules } from "../src/status/read-schedules";
import { readRunReport, readRunsOverview } from "../src/status/read-status";
import { readRunWorkers } from "../src/status/read-workers";
import type { ErrorAccess } from "./access";
import { json, type Route } from "./routes";

/**
 * The dashboard's data, as JSON: what `status` reads (the runs' counters, chunks, workers,
 * errors, samples and history, the scheduled jobs), never a users row, so a page polling every second costs the
 * database a handful of index lookups.
 */

const RUN_ID = "(\\d{1,9})";
/** The history shown: its newest events (a run has one for each chunk, and more after faults). */
const EVENTS_SHOWN = 200;

const isActive = (status: string) => !ENDED_RUN_STATUSES.has(status as RunStatus);

export function readRoutes(db: WithClient, controls: boolean, errors: ErrorAccess): Route[] {
  return [
    {
      method: "GET",
      path: /^\/api\/dashboard$/,
      answer: () => json(200, { controls, errorsNeedToken: errors.tokenUnlocks }),
    },
    {
      method: "GET",
      path: /^\/api\/runs$/,
      answer: async () => {
        const runs = await db((client) => readRunsOverview(client, 50));
        // runs still going first, newest first within each group (the view's order)
        const ordered = [...runs.filter((run) => isActive(run.status)), ...runs.filter((run) => !isActive(run.status))];
        const schedules = await db((client) => readSchedules(client, 3));
        return json(200, { runs: ordered, schedules });
      },
    },
    {
      method: "GET",
      path: new RegExp(`^/api/runs/${RUN_ID}$`),
      answer: async ([id], request) => {
        const run = await db(async (client) => {
          const report = await readRunReport(client, Number(id));
          return report && { ...report, workers: await readRunWorkers(client, report.id) };
        });
        if (!run) return json(404, { error: `no batch run ${id}` });
        const allowed = errors.allows(request);
        return json(200, { run: allowed === true ? run : { ...run, errors: [], errorsHidden: allowed.hiddenBecause } });
      },
    },
    {
      method: "GET",
      path: new RegExp(`^/api/runs/${RUN_ID}/samples$`),
      answer: async ([id]) => json(200, { samples: await db((client) => readProgressPoints(client, Number(id))) }),
    },
    {
      method: "GET",
      path: new RegExp(`^/api/runs/${RUN_ID}/events$`),
      answer: async ([id]) => json(200, await db((client) => readNewestEvents(client, Number(id), EVENTS_SHOWN))),
    },
  ];
}
