import type pg from "pg";
import { runCommand } from "../cli/run-command";
import { errorAccess } from "../dashboard/access";
import type { Controls, DryRun, ReadOnly, SendSignal, StartRun } from "../dashboard/control-api";
import { serveDashboard } from "../dashboard/server";
import { runDryRun, runEnqueue } from "../seed/commands";
import { describeDatabase } from "../src/base/redact";
import { type DashboardConfig, getConfig, requireDatabaseUrl } from "../src/config/config";
import { getCatalog, getLogger } from "../src/config/context";
import { createPool, type WithClient, withPool } from "../src/db/pool";
import { checkDatabase } from "../src/db/preflight";
import { paramFields } from "../src/jobs/params";
import { DEFAULT_DRY_RUN_SAMPLE } from "../src/processing/dry-run";
import { defaultBatchName } from "../src/runs/model";
import { cancelRun, pauseRun, RunNotFoundError, resumeRun, retryRun } from "../workflows/batch-control";

/**
 * `npm run dashboard`: the web dashboard (dashboard/) on DASHBOARD_PORT, reading through
 * MONITOR_DATABASE_URL or DATABASE_URL. Given DASHBOARD_TOKEN and the write-enabled
 * DATABASE_URL, it also pauses, resumes, cancels and retries runs with the workflow's own signals,
 * and starts runs with their parameters as `seed enqueue` does.
 */

/** Page loads and polls are a few short reads each; a signal takes one more. */
const CONNECTIONS = 4;

const SIGNALS = { pause: pauseRun, resume: resumeRun, cancel: cancelRun, retry: retryRun };

function sendSignal(db: WithClient): SendSignal {
  return async (signal, runId, actor) => {
    try {
      const { run, changed } = await SIGNALS[signal](db, `#${runId}`, actor);
      return { status: run.status, changed };
    } catch (error) {
      if (error instanceof RunNotFoundError) return undefined;
      throw error;
    }
  };
}

/**
 * Pause, resume, cancel and retry, or why there are none. Through MONITOR_DATABASE_URL the dashboard has
 * no connection but that one, a login meant for reading (batch_viewer), so it sends no signal.
 */
/** A run started as `seed enqueue` starts it, under the dashboard's own settings (CHUNK_SIZE, ...). */
function startRunOf(pool: pg.Pool): StartRun {
  return async ({ job: name, name: batchName, params, canary }, actor) => {
    const job = getCatalog().jobs.find((known) => known.name === name);
    if (!job) return undefined;
    const config = getConfig();
    const batch = batchName ?? defaultBatchName(job.name);
    const started = await runEnqueue(pool, job, batch, config, params, actor, undefined, canary);
    return { run: started.run, batch: started.batch, created: started.created, status: started.status };
  };
}

/** A dry run as `seed enqueue --dry-run` makes it, of the default sample, under the dashboard's settings. */
function dryRunOf(pool: pg.Pool): DryRun {
  return async ({ job: name, params }) => {
    const job = getCatalog().jobs.find((known) => known.name === name);
    return job && runDryRun(pool, job, DEFAULT_DRY_RUN_SAMPLE, getConfig(), params);
  };
}

function controlsOf({ token, monitorDatabaseUrl }: DashboardConfig, pool: pg.Pool): Controls | ReadOnly {
  const db = withPool(pool);
  if (monitorDatabaseUrl) {
    return {
      readOnlyBecause:
        "it reads through MONITOR_DATABASE_URL, a login meant for reading, and then sends no signal, token or not",
    };
  }
  if (!token) return { readOnlyBecause: "it was started without DASHBOARD_TOKEN" };
  const jobs = getCatalog().jobs.map((job) => ({
    name: job.name,
    description: job.description,
    params: paramFields(job.params),
  }));
  return { token, send: sendSignal(db), jobs, start: startRunOf(pool), dryRun: dryRunOf(pool) };
}

async function main(): Promise<void> {
  const config = getConfig();
  const logger = getLogger();
  const { port, host, token, readToken, monitorDatabaseUrl } = config.dashboard;
  const url = monitorDatabaseUrl ?? requireDatabaseUrl(config);
  if (token && monitorDatabaseUrl)
    logger.warn("DASHBOARD_TOKEN is not used: with MONITOR_DATABASE_URL the dashboard only reads");
  await checkDatabase(url, "schema");
  const pool = createPool({ url, max: CONNECTIONS, appName: `dashboard ${config.podName}`, logger });
  const db = withPool(pool);
  const controls = controlsOf(config.dashboard, pool);

  // an unused DASHBOARD_TOKEN (reading through MONITOR_DATABASE_URL) unlocks nothing
  const errors = errorAccess(["token" in controls ? controls.token : undefined, readToken], host);
  const served = await serveDashboard({ db, logger, controls, errors }, { host, port }).catch(
    async (error: unknown) => {
      await pool.end();
      throw error;
    },
  );
  const listening = served.port;
  logger.info(
    { host, port: listening, database: describeDatabase(url), controls: "token" in controls },
    `dashboard on http://${host}:${listening}/ (${"token" in controls ? "pause, resume, cancel, retry and start with the token" : "read-only"})`,
  );

  await new Promise((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  served.close();
  await pool.end();
}

if (require.main === module) runCommand("dashboard", main);
