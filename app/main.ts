import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run as runWorker } from "graphile-worker";
import type pg from "pg";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage, requireWholeNumbers } from "../cli/args";
import { runCommand } from "../cli/run-command";
import { errorAccess } from "../dashboard/access";
import type { ReadOnly } from "../dashboard/control-api";
import { serveDashboard } from "../dashboard/server";
import { assertImported, DEFAULT_AS_OF, runEnqueue, runGenerate, runImport } from "../seed/commands";
import { describeDatabase } from "../src/base/redact";
import { getConfig, sessionDatabaseUrl } from "../src/config/config";
import { getCatalog, getLogger } from "../src/config/context";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../src/db/embedded";
import { migrate } from "../src/db/migrate";
import { createPool, withPool } from "../src/db/pool";
import { checkDatabase } from "../src/db/preflight";
import { workerSessionName } from "../src/health/signals";
import { DEFAULT_JOB } from "../src/jobs/catalog";
import { defaultBatchName, ENDED_RUN_STATUSES, type Run } from "../src/runs/model";
import { getRun } from "../src/runs/runs";
import { formatCount } from "../src/terminal/format";
import { printResult } from "../src/terminal/output";
import { createProgress } from "../src/terminal/progress";
import { describeSummary, summarizeRun } from "../src/terminal/run-summary";
import { workerPreset } from "../src/worker/preset";
import { workerRecovery } from "../workflows/recovery";
import { taskList } from "./task-list";

/**
 * The main job, end to end in one process: schema, generated users, COPY import, a batch run,
 * and graphile-worker processing it until the run ends. Without DATABASE_URL it brings its own
 * embedded PostgreSQL. It ends with the run's summary on stdout: a few lines for a person at a
 * terminal, else (or with --json) JSON as the last line.
 */

const POLL_MS = 250;

/** `--dashboard` watches the job's run; steering runs is `npm run dashboard`'s, with a token. */
const WATCH_ONLY: ReadOnly = {
  readOnlyBecause: "npm start -- --dashboard only watches; npm run dashboard with DASHBOARD_TOKEN steers runs",
};

async function waitForRun(pool: pg.Pool, runId: number): Promise<Run> {
  const db = withPool(pool);
  const progress = createProgress({ label: "process", total: 0, unit: "rows", logger: getLogger() });
  for (;;) {
    const run = await db((client) => getRun(client, runId));
    if (!run) throw new Error(`batch run ${runId} disappeared`);
    progress.update(run.completedRecords + run.failedRecords, run.totalRecords);
    if (ENDED_RUN_STATUSES.has(run.status)) {
      progress.finish();
      return run;
    }
    await sleep(POLL_MS);
  }
}

function seconds(since: number): number {
  return Math.round((performance.now() - since) / 10) / 100;
}

async function main(): Promise<void> {
  const config = getConfig();
  const logger = getLogger();
  const args = await yargs(hideBin(process.argv))
    .scriptName("npm start --")
    .usage("$0 [options]\n\nRuns the whole job: schema, generate, import, enqueue, process.")
    .option("rows", { type: "number", default: 100_000, describe: "users to generate and process" })
    .option("rows-per-file", { type: "number", default: 100_000, describe: "rows per generated CSV file" })
    .option("seed", { type: "number", default: 1, describe: "seed of the generated data" })
    .option("batch-name", {
      type: "string",
      requiresArg: true,
      default: defaultBatchName(DEFAULT_JOB),
      describe: "name of the batch run",
    })
    .option("data-dir", {
      requiresArg: true,
      type: "string",
      describe: "where to write the CSV files (default: a temporary directory)",
    })
    .option("dashboard", {
      type: "boolean",
      default: false,
      describe: "serve the dashboard (read-only) on DASHBOARD_PORT while the job runs, and after it until Ctrl-C",
    })
    .option("json", {
      type: "boolean",
      default: false,
      describe: "end with the JSON summary even on a terminal (the default when stdout is not one)",
    })
    .check((argv) => requireWholeNumbers(argv, ["rows", "rows-per-file", "seed"]))
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();

  let embedded: EmbeddedDatabase | undefined;
  let dashboard: { port: number; close(): void } | undefined;
  // the whole job runs in this process, the worker too: a session of its own, past any transaction pooler
  if (config.databaseUrl === undefined && config.workerDirectDatabaseUrl === undefined) {
    embedded = await startEmbeddedPostgres(logger);
    // a database of its own, nobody else's to leave idle time to: its worker (which reads this
    // configuration) runs without the pause after each slice, unless SLICE_PAUSE_RATIO says
    config.slicePauseRatio ??= 0;
  }
  const url = embedded?.url ?? sessionDatabaseUrl(config, "npm start");
  // its in-process worker's sessions: named as every worker's (src/health/signals.ts)
  const pool = createPool({ url, max: config.pools.mainJob, appName: workerSessionName(config.podName), logger });
  const dataDir = args["data-dir"] ?? (await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-data-")));
  try {
    // the schema is the job's own first step: the database need only answer
    await checkDatabase(url, "connection");
    logger.info({ database: describeDatabase(url) }, "using database");
    // before any work: a METRICS_PORT asked for that is taken ends the job at once
    const recover = workerRecovery({ deadAfterMs: config.workerDeadAfterMs, actor: config.podName, logger });
    const preset = await workerPreset(config, logger, url, {
      recovery: recover,
      exit: (status) => process.exit(status),
    });
    await migrate(pool, logger);
    if (args.dashboard) {
      const { host, port } = config.dashboard;
      const errors = errorAccess([config.dashboard.readToken], host);
      dashboard = await serveDashboard({ db: withPool(pool), logger, controls: WATCH_ONLY, errors }, { host, port });
      logger.info({ port: dashboard.port }, `dashboard on http://localhost:${dashboard.port}/`);
    }

    let started = performance.now();
    const generated = await runGenerate({
      rows: args.rows,
      out: dataDir,
      rowsPerFile: args["rows-per-file"],
      seed: args.seed,
      statusMix: "pending",
      asOf: DEFAULT_AS_OF,
    });
    const generateSeconds = seconds(started);
    logger.info(
      { rows: generated.rows, files: generated.files },
      `generate: ${formatCount(generated.rows)} users written`,
    );

    started = performance.now();
    const imported = await runImport(pool, dataDir, Math.min(4, os.availableParallelism() * 2), config);
    assertImported(imported);
    const importSeconds = seconds(started);
    logger.info(
      { rows: imported.rows, skipped: imported.skipped },
      `import: ${formatCount(imported.rows)} rows imported`,
    );

    const enqueued = await runEnqueue(pool, getCatalog().get(DEFAULT_JOB), args["batch-name"], config);
    logger.info(
      enqueued,
      `enqueue: batch run ${enqueued.run} ${enqueued.created ? "started" : "exists already"}, ${formatCount(enqueued.rows)} rows`,
    );

    const runner = await runWorker({ preset, pgPool: pool, taskList });
    let run: Run;
    try {
      run = await waitForRun(pool, enqueued.run);
    } finally {
      await runner.stop();
    }
    const summary = summarizeRun(run, { generateSeconds, importSeconds });
    const forPerson = process.stdout.isTTY === true && !args.json;
    if (forPerson) process.stdout.write(`${describeSummary(summary)}\n`);
    else printResult(summary);
    if (run.status !== "completed") process.exitCode = 1;
    if (dashboard) {
      logger.info(`the dashboard stays on http://localhost:${dashboard.port}/ until Ctrl-C`);
      await new Promise((stop) => {
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    }
  } finally {
    dashboard?.close();
    await pool.end();
    if (!args["data-dir"]) await fs.rm(dataDir, { recursive: true, force: true });
    await embedded?.stop();
  }
}

runCommand("the job", main);
