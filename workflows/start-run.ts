import { CommandError, UsageError } from "../src/base/command-error";
import { type Config, getConfig } from "../src/config/config";
import { inTransaction, type WithClient } from "../src/db/pool";
import { assertJobsFitDatabase } from "../src/jobs/catalog-check";
import type { JobDefinition } from "../src/jobs/define";
import { checkParams, comparableParams, type GivenParams } from "../src/jobs/params";
import { planningLimits } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import { addQueueJob, queueJobKeys, STEP_MAX_ATTEMPTS, TASKS } from "../src/runs/job-queue";
import type { Run, RunSettings } from "../src/runs/model";
import { runInputDifferences } from "../src/runs/run-inputs";
import { findUnmatchedKeys, loadRunKeys, type UnmatchedKeys } from "../src/runs/run-keys";
import { isIdReference } from "../src/runs/run-reference";
import { findActiveRun, hasRowsToProcess, insertRun, setRunSubset } from "../src/runs/runs";
import { describeSubset, type SubsetRequest, subsetOf } from "../src/runs/subset";
import { planRunIn } from "./plan-run";

/**
 * A batch run as a durable workflow on graphile-worker:
 *
 *   start (idempotent by name) -> plan -> chunks (fan-out) -> finish (fan-in)
 *     -> retry round (only the retryable failed rows, after a growing delay) -> finish -> ...
 *     -> completed
 *
 * Each step is a graphile-worker job whose result and next transition commit together
 * (durableStep); chunks are the activities that touch the job's table. Each checks first, under the run's
 * lock, that the run is where the workflow would have it (step-guards.ts), so that forged or
 * duplicated jobs change nothing. Every state change is appended to the run's history
 * (batch_events). A file each: start-run.ts, plan-run.ts, the chunk activity in chunk-activity.ts,
 * finish-round.ts, and how a run ends in run-endings.ts. Pause, resume and cancel are in
 * batch-control.ts; recovery of work that no job will do is in recovery.ts.
 */

/**
 * The settings a run of `job` starts with: the starter's environment where it sets them, else
 * the job's defaults; and the parameters given, as given (startRun checks them).
 */
export function runSettings(config: Config, job: JobDefinition, params: GivenParams = {}): RunSettings {
  const maxAttempts = config.maxAttempts ?? job.defaults.maxAttempts;
  return {
    ...(Object.keys(params).length > 0 ? { params } : {}),
    chunkSize: config.chunkSize ?? job.defaults.chunkSize,
    maxAttempts,
    retryRounds: config.retryRounds ?? maxAttempts - 1,
    retryDelayMs: config.retryDelayMs,
    chunkMaxAttempts: config.chunkMaxAttempts,
    hints: { workers: config.workers, rowConcurrency: config.rowConcurrency ?? job.defaults.rowConcurrency },
  };
}

/** Another run of the job is active: it owns the rows a new run would work through. */
export class RunConflictError extends CommandError {
  override name = "RunConflictError";
}

/** The name is another job's run: starting it would return that run and start nothing of this job. */
export class RunOfAnotherJobError extends CommandError {
  override name = "RunOfAnotherJobError";
}

/** The name is a run started with other inputs (parameters): it is not the run asked for. */
export class RunStartedOtherwiseError extends CommandError {
  override name = "RunStartedOtherwiseError";
}

/**
 * Throws unless the existing run was started with the inputs asked for now. Parameters are
 * compared as the job's schema reads them: a default given or left out, `"10"` or `10` where the
 * schema coerces, are the same start.
 */
function assertStartedAlike(job: JobDefinition, run: Run, settings: RunSettings): void {
  const read = (given: RunSettings): RunSettings => ({ ...given, params: comparableParams(job, given.params) });
  const differences = runInputDifferences(read(run.settings), read(settings));
  if (differences.length === 0) return;
  throw new RunStartedOtherwiseError(
    `batch run ${JSON.stringify(run.name)} (id ${run.id}) was started with ${differences.join("; ")}: ` +
      "start those under another name",
  );
}

/** The run's start, its job's check or its plan outlasted PLAN_TIMEOUT_S: nothing was started. */
export class PlanTimeoutError extends CommandError {
  override name = "PlanTimeoutError";
}

/** A new run would find no row to work through. */
export class NothingToProcessError extends CommandError {
  override name = "NothingToProcessError";
}

/** Throws unless the existing run is one of `job`: a name names one run, of one job. */
function assertRunOfJob(run: Run, job: JobDefinition): void {
  if (run.job === job.name) return;
  throw new RunOfAnotherJobError(
    `batch run ${JSON.stringify(run.name)} (id ${run.id}) is a run of job ${run.job}, not ${job.name}: ` +
      `start ${job.name} under another name`,
  );
}

/**
 * Who plans a new run: the starter, in the transaction that starts it (the run is planned, its
 * chunk jobs enqueued, when the call returns), or a worker, from the plan job the start adds.
 */
export type Planning = "now" | "by-worker";

/**
 * Starts the run of `job` named `name` with `settings` (its parameters among them, checked
 * against the job's schema first), or returns it unchanged if it exists (refused when that run
 * is another job's, or was started with other parameters). The job is checked against the database's catalog first. Refused while
 * another run of the job is active (pending, running, paused or cancelling): a row belongs to at
 * most one active run. A new run
 * is refused too when no row is pending or retryable: it would end at once and keep its name,
 * which the same name could then never start again once rows come.
 *
 * With `subset`, the run takes only the rows of a key range, or of a file's keys (loaded with the
 * start; `unmatched` counts those that name no row of the job), and leaves the others pending.
 */
export async function startRun(
  db: WithClient,
  job: JobDefinition,
  name: string,
  settings: RunSettings,
  actor: string,
  planning: Planning = "by-worker",
  subset?: SubsetRequest,
): Promise<{ run: Run; created: boolean; unmatched?: UnmatchedKeys }> {
  if (isIdReference(name)) {
    throw new UsageError(`a batch name cannot be "#" and digits (${JSON.stringify(name)}): #N names run N`);
  }
  checkParams(job, settings.params);
  const { planTimeoutMs } = getConfig();
  const limits = planningLimits(planTimeoutMs);
  const start = () =>
    db((client) =>
      inTransaction(
        client,
        async () => {
          const asked = subsetOf(subset);
          const askedSettings = asked ? { ...settings, subset: asked } : settings;
          const started = await insertRun(client, name, job.name, askedSettings, actor);
          if (!started.created) {
            assertRunOfJob(started.run, job);
            assertStartedAlike(job, started.run, askedSettings);
            return started;
          }
          const run = started.run;
          let unmatched: UnmatchedKeys | undefined;
          if (subset && "keysPath" in subset && asked && "keysFile" in asked) {
            run.settings.subset = { ...asked, keys: await loadRunKeys(client, run.id, subset.keysPath) };
            await setRunSubset(client, run.id, run.settings.subset);
            unmatched = await findUnmatchedKeys(client, job, run.id);
          }
          if (!(await hasRowsToProcess(client, job, settings.maxAttempts, { runId: run.id, subset: asked }))) {
            const of = asked ? ` of ${describeSubset(run.settings.subset)}` : "";
            throw new NothingToProcessError(`nothing to process: no pending or retryable rows${of} in ${job.table}`);
          }
          await appendEvent(client, run.id, "started", {
            step: "start",
            actor,
            counts: unmatched && { unmatchedKeys: unmatched.count },
            detail: JSON.stringify(run.settings),
          });
          if (planning === "now") await planRunIn(client, run.id, actor);
          else await addQueueJob(client, TASKS.plan, { run: run.id }, queueJobKeys.plan(run.id), STEP_MAX_ATTEMPTS);
          return { ...started, unmatched };
        },
        limits,
      ),
    );
  try {
    await db((client) => assertJobsFitDatabase(client, [job], limits));
    return await start();
  } catch (error) {
    if (isStatementTimeout(error)) {
      throw new PlanTimeoutError(
        `starting batch run ${JSON.stringify(name)} took longer than PLAN_TIMEOUT_S (${planTimeoutMs / 1000}s), ` +
          `and nothing was started: is ${job.schema}.${job.table} locked? (${(error as Error).message})`,
      );
    }
    if ((error as { constraint?: string }).constraint !== "batch_jobs_one_active_run") throw error;
    const active = await db((client) => findActiveRun(client, job.name));
    throw new RunConflictError(
      `batch run ${JSON.stringify(active?.name)} (id ${active?.id}) of job ${job.name} is ${active?.status}: ` +
        "wait for it to end, or cancel it, before starting another",
    );
  }
}

/** PostgreSQL cancelled a statement at its statement_timeout (not at a user's request). */
const isStatementTimeout = (error: unknown) =>
  (error as { code?: unknown }).code === "57014" && /statement timeout/.test((error as Error).message);
