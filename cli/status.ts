import { setTimeout as sleep } from "node:timers/promises";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { CommandError } from "../src/base/command-error";
import { getConfig } from "../src/config/config";
import { withPool } from "../src/db/pool";
import { ENDED_RUN_STATUSES, type RunStatus } from "../src/runs/model";
import { findRun } from "../src/runs/run-reference";
import { readSchedules } from "../src/status/read-schedules";
import { readRunReport, readRunsOverview } from "../src/status/read-status";
import { renderLine, renderOverview, renderReport, renderSchedules } from "../src/status/render";
import { printResult } from "../src/terminal/output";
import { failOnUsage, requireWholeNumbers } from "./args";
import { withCommandPool } from "./command-pool";
import { runCommand } from "./run-command";

/**
 * `status [run] [--watch] [--json]`: where batch runs are, from the database alone; without a
 * run, the scheduled jobs too.
 */

class UnknownRunError extends CommandError {}

interface StatusArgs {
  run?: string;
  watch: boolean;
  json: boolean;
  interval: number;
}

async function show(args: StatusArgs): Promise<void> {
  await withCommandPool("status", 1, async (pool) => {
    const db = withPool(pool);
    const run = args.run === undefined ? undefined : await db((client) => findRun(client, args.run as string));
    if (args.run !== undefined && !run)
      throw new UnknownRunError(`no batch run is named or numbered ${JSON.stringify(args.run)}`);
    const interactive = process.stdout.isTTY === true && !args.json;
    for (;;) {
      if (run) {
        const report = await db((client) => readRunReport(client, run.id));
        if (!report) throw new UnknownRunError(`batch run ${run.id} disappeared`);
        if (args.json) printResult(report);
        else if (!args.watch) process.stdout.write(`${renderReport(report)}\n`);
        else if (interactive) process.stdout.write(`\x1b[H\x1b[J${renderReport(report)}\n`);
        else process.stdout.write(`${renderLine(report)}\n`);
        if (!args.watch || ENDED_RUN_STATUSES.has(report.status as RunStatus)) return;
      } else {
        const runs = await db((client) => readRunsOverview(client));
        const schedules = await db((client) => readSchedules(client));
        const scheduled = renderSchedules(schedules);
        if (args.json) printResult({ runs, schedules });
        else {
          const text = `${renderOverview(runs)}${scheduled ? `\n\n${scheduled}` : ""}`;
          process.stdout.write(`${interactive && args.watch ? "\x1b[H\x1b[J" : ""}${text}\n`);
        }
        if (!args.watch || runs.every((run) => ENDED_RUN_STATUSES.has(run.status as RunStatus))) return;
      }
      await sleep(args.interval * 1000);
    }
  });
}

export async function main(argv: string[]): Promise<void> {
  getConfig();
  await yargs(argv)
    .scriptName("status")
    .usage("$0 [run] [options]\n\nShows batch runs: all of them, or one (by name or id) in detail.")
    .command(
      "$0 [run]",
      "show batch runs",
      (cmd) =>
        cmd
          .positional("run", { type: "string", describe: "a run's name or id" })
          .option("watch", { type: "boolean", default: false, describe: "redraw until the run(s) end" })
          .option("json", { type: "boolean", default: false, describe: "print one JSON object (a line each redraw)" })
          .option("interval", { type: "number", default: 1, describe: "seconds between redraws" })
          .check((a) => requireWholeNumbers(a, ["interval"])),
      (a) => show({ run: a.run, watch: a.watch, json: a.json, interval: a.interval }),
    )
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();
}

if (require.main === module) runCommand("status", () => main(hideBin(process.argv)));
