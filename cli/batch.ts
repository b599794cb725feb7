import os from "node:os";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { getConfig } from "../src/config/config";
import { withPool } from "../src/db/pool";
import type { RunEvent } from "../src/runs/model";
import { formatCount } from "../src/terminal/format";
import { printResult, table } from "../src/terminal/output";
import { printable } from "../src/terminal/printable";
import {
  cancelRun,
  pauseRun,
  pauseSchedule,
  resumeRun,
  retryRun,
  runHistory,
  type SignalResult,
} from "../workflows/batch-control";
import { failOnUsage } from "./args";
import { withCommandPool } from "./command-pool";
import { runCommand } from "./run-command";

/**
 * `batch <pause|resume|cancel|retry|history> <run>`: steer a batch run from any machine;
 * `batch schedule <pause|resume> <job>`: a job's schedule.
 */

const actor = () => `${os.userInfo().username}@${os.hostname()}`;

type Signal = typeof pauseRun;

async function sendSignal(send: Signal, run: string): Promise<void> {
  const result: SignalResult = await withCommandPool("batch", 2, (pool) => send(withPool(pool), run, actor()));
  printResult({ run: result.run.id, batch: result.run.name, status: result.run.status, changed: result.changed });
}

async function retry(run: string): Promise<void> {
  const result = await withCommandPool("batch", 2, (pool) => retryRun(withPool(pool), run, actor()));
  const { id, name, status, round } = result.run;
  printResult({ run: id, batch: name, status, round, rows: result.rows, changed: result.changed });
}

async function sendScheduleSignal(job: string, paused: boolean): Promise<void> {
  const { state, changed } = await withCommandPool("batch", 2, (pool) =>
    pauseSchedule(withPool(pool), job, paused, actor()),
  );
  printResult({ job: state.job, cron: state.cron, timeZone: state.timeZone, paused: state.paused, changed });
}

/** "done 120/1,000, failed 3, retrying 5" plus the event's own counts. */
function formatCounts(event: RunEvent): string {
  const { total = 0, completed = 0, failed = 0, retryable = 0, ...own } = event.counts;
  const run = `done ${formatCount(completed + failed)}/${formatCount(total)}, failed ${failed}, retrying ${retryable}`;
  const extra = Object.entries(own).map(([key, value]) => `${key} ${value}`);
  return [run, ...extra].join(", ");
}

/**
 * An event as JSON: its detail is text, but the start records the run's settings as JSON text
 * (workflows/start-run.ts), given here as the object it is.
 */
function eventAsJson(event: RunEvent) {
  return { ...event, detail: event.event === "started" && event.detail ? JSON.parse(event.detail) : event.detail };
}

async function printHistory(run: string, json: boolean): Promise<void> {
  const history = await withCommandPool("batch", 2, (pool) => runHistory(withPool(pool), run));
  if (json) {
    const events = history.events.map(eventAsJson);
    printResult({ run: history.run.id, batch: history.run.name, status: history.run.status, events });
    return;
  }
  const rows = history.events.map((event) => [
    event.at.toISOString(),
    event.event,
    event.round === null ? "" : String(event.round),
    event.chunkNo === null ? "" : String(event.chunkNo),
    event.actor,
    formatCounts(event),
    event.detail ?? "",
  ]);
  process.stdout.write(`batch run ${history.run.id} "${printable(history.run.name)}": ${history.run.status}\n`);
  process.stdout.write(`${table(["at", "event", "round", "chunk", "by", "counts", "detail"], rows)}\n`);
}

export async function main(argv: string[]): Promise<void> {
  getConfig();
  const runArg = { describe: "the run's name, or its id", type: "string" as const, demandOption: true };
  await yargs(argv)
    .scriptName("batch")
    .usage(
      "$0 <command> <run>\n$0 schedule <pause|resume> <job>\n\n" +
        "Steers a batch run, or a job's schedule; works from any machine with access to the database.",
    )
    .command(
      "pause <run>",
      "start no more chunks; running chunks finish",
      (cmd) => cmd.positional("run", runArg),
      (args) => sendSignal(pauseRun, args.run as string),
    )
    .command(
      "resume <run>",
      "enqueue the chunks of a paused run again",
      (cmd) => cmd.positional("run", runArg),
      (args) => sendSignal(resumeRun, args.run as string),
    )
    .command(
      "cancel <run>",
      "remove waiting chunks, stop running ones after their slice; unprocessed rows stay pending",
      (cmd) => cmd.positional("run", runArg),
      (args) => sendSignal(cancelRun, args.run as string),
    )
    .command(
      "retry <run>",
      "a new round over the rows an ended run failed, their attempts given back (fix the job first)",
      (cmd) => cmd.positional("run", runArg),
      (args) => retry(args.run as string),
    )
    .command(
      "schedule <action> <job>",
      "pause or resume a job's schedule for every pod: while paused, its ticks start no run",
      (cmd) =>
        cmd
          .positional("action", { choices: ["pause", "resume"] as const, demandOption: true })
          .positional("job", { describe: "the scheduled job's name", type: "string", demandOption: true }),
      (args) => sendScheduleSignal(args.job, args.action === "pause"),
    )
    .command(
      "history <run>",
      "every state change of the run: when, what, who, counts",
      (cmd) => cmd.positional("run", runArg).option("json", { type: "boolean", default: false }),
      (args) => printHistory(args.run as string, args.json),
    )
    .demandCommand(1, "name a command")
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();
}

if (require.main === module) runCommand("batch", () => main(hideBin(process.argv)));
