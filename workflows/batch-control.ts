import type { PoolClient } from "pg";
import { CommandError } from "../src/base/command-error";
import { getConfig } from "../src/config/config";
import { getCatalog } from "../src/config/context";
import { inTransaction, type WithClient } from "../src/db/pool";
import { cancelIdleChunks, findCanaryEnd, planChunks, planningLimits, releaseDeferredChunks } from "../src/runs/chunks";
import { appendEvent, listEvents } from "../src/runs/events";
import { enqueueChunkQueueJobs, removeWaitingQueueJobs } from "../src/runs/job-queue";
import { ENDED_RUN_STATUSES, type Run, type RunEvent } from "../src/runs/model";
import { findRun } from "../src/runs/run-reference";
import { beginRound, findActiveRun, lockRun, reopenRun, resetFailedAttempts, setRunStatus } from "../src/runs/runs";
import { type ScheduleState, setSchedulePaused } from "../src/runs/schedules";
import { findStepResult, recordStep } from "../src/runs/steps";
import { settleCancellation } from "./run-endings";

/**
 * Signals to a batch run, from any machine with database access. Each takes the run's lock,
 * changes its status, adjusts its waiting jobs and records itself in the run's history, in one
 * transaction. Each is idempotent: asking for the state a run is already in changes nothing.
 *
 * - pause: no chunk starts any more (waiting chunk jobs are removed); running chunks finish.
 * - resume: the chunks not yet done are enqueued again; after a canary, the chunks deferred past it too.
 * - cancel: waiting jobs are removed, running chunks stop after their current slice, and the
 *   run ends `cancelled` once none runs. Rows not processed stay pending, for a later run: a
 *   cancelled run is over, and neither resumed nor retried (its afterRun has run, and another
 *   run of the job may have taken its rows since).
 * - retry: a run that has ended completed or failed starts a new round over the rows it failed,
 *   their attempts given back; it runs again until that round and its retry rounds end.
 */

export class RunNotFoundError extends CommandError {
  override name = "RunNotFoundError";
}

/** The run is in a state where the signal makes no sense (cancelling a completed run, say). */
export class SignalRefusedError extends CommandError {
  override name = "SignalRefusedError";
}

export interface SignalResult {
  run: Run;
  /** False when the run was already in the state asked for. */
  changed: boolean;
}

async function signal(
  db: WithClient,
  nameOrId: string,
  apply: (client: PoolClient, run: Run) => Promise<boolean>,
): Promise<SignalResult> {
  return db((client) =>
    inTransaction(client, async () => {
      const found = await findRun(client, nameOrId);
      if (!found) throw new RunNotFoundError(`no batch run is named or numbered ${JSON.stringify(nameOrId)}`);
      const run = await lockRun(client, found.id);
      const changed = await apply(client, run);
      return { run: await lockRun(client, run.id), changed };
    }),
  );
}

function refuse(run: Run, wanted: string): never {
  if (run.status === "cancelled") {
    throw new SignalRefusedError(
      `batch run ${JSON.stringify(run.name)} was cancelled, which ended it; its unprocessed rows are pending: ` +
        `start a new run to process them (seed enqueue --job ${run.job} --batch-name NEW_NAME)`,
    );
  }
  const state =
    run.status === "completed" || run.status === "failed" ? `has already ${run.status}` : `is ${run.status}`;
  throw new SignalRefusedError(`batch run ${JSON.stringify(run.name)} ${state}; ${wanted}`);
}

export function pauseRun(db: WithClient, nameOrId: string, actor: string): Promise<SignalResult> {
  return signal(db, nameOrId, async (client, run) => {
    if (run.status === "paused") return false;
    if (run.status !== "running" && run.status !== "pending")
      refuse(run, "only a pending or running run can be paused");
    await setRunStatus(client, run.id, "paused");
    const removed = await removeWaitingQueueJobs(client, run.id, "chunks");
    await appendEvent(client, run.id, "paused", {
      step: "control",
      actor,
      round: run.round,
      counts: { removedJobs: removed },
    });
    return true;
  });
}

export function resumeRun(db: WithClient, nameOrId: string, actor: string): Promise<SignalResult> {
  return signal(db, nameOrId, async (client, run) => {
    if (run.status === "running" || run.status === "pending") return false;
    if (run.status !== "paused") refuse(run, "only a paused run can be resumed");
    // paused before its plan step ran: the plan job is still queued and plans when it runs
    const planned = await findStepResult(client, run.id, "plan", 0);
    await setRunStatus(client, run.id, planned ? "running" : "pending");
    // after its canary, the rest of the run; during it (paused by hand), the canary's chunks only
    const afterCanary = planned && run.round === 0 && (await findCanaryEnd(client, run.id)) !== undefined;
    const released = afterCanary ? await releaseDeferredChunks(client, run.id) : 0;
    const enqueued = planned ? await enqueueChunkQueueJobs(client, run.id, run.round, 0, run.settings) : 0;
    await appendEvent(client, run.id, "resumed", {
      step: "control",
      actor,
      round: run.round,
      counts: afterCanary ? { enqueuedJobs: enqueued, releasedChunks: released } : { enqueuedJobs: enqueued },
      detail: afterCanary ? "after the canary: the rest of the run" : undefined,
    });
    return true;
  });
}

export function cancelRun(db: WithClient, nameOrId: string, actor: string): Promise<SignalResult> {
  return signal(db, nameOrId, async (client, run) => {
    if (run.status === "cancelling" || run.status === "cancelled") return false;
    if (run.status === "completed" || run.status === "failed") refuse(run, "there is nothing to cancel");
    await setRunStatus(client, run.id, "cancelling");
    const removed = await removeWaitingQueueJobs(client, run.id, "all");
    const { running } = await cancelIdleChunks(client, run.id, run.round);
    await appendEvent(client, run.id, "cancel-requested", {
      step: "control",
      actor,
      round: run.round,
      counts: { removedJobs: removed, runningChunks: running },
    });
    await settleCancellation(client, { ...run, status: "cancelling" }, actor);
    return true;
  });
}

/** What a retry command records as its step: the failed rows it took up, in how many chunks. */
interface RetryStep {
  rows: number;
  chunks: number;
}

export interface RetryResult extends SignalResult {
  /** The failed rows the run's current round took up (by this retry, or the one before it when unchanged). */
  rows: number;
}

/**
 * Starts a new round of an ended run over the rows of its job's table it failed, with their
 * attempts given back (reset to 0, so that the run's maxAttempts and retry rounds apply to them
 * again), in one transaction under the run's lock: those rows leave failed_records for
 * retryable_records, the run runs again, its chunks are enqueued due now. The workers run the
 * job's code as they load it now: fix the job, roll the workers out, then retry. Asking again
 * while that round runs changes nothing; refused for a run still active, cancelled, or that
 * failed no row. Recorded as step `retry` of its round.
 */
export async function retryRun(db: WithClient, nameOrId: string, actor: string): Promise<RetryResult> {
  let rows = 0;
  let retrying: Run | undefined;
  const result = await signal(db, nameOrId, async (client, run) => {
    retrying = run;
    const retried = await findStepResult(client, run.id, "retry", run.round);
    if (retried && !ENDED_RUN_STATUSES.has(run.status)) {
      rows = (retried.result as RetryStep).rows;
      return false;
    }
    if (run.status !== "completed" && run.status !== "failed") {
      refuse(run, "a retry takes up the failed rows of a run that has ended");
    }
    const active = await findActiveRun(client, run.job);
    if (active) {
      throw new SignalRefusedError(
        `batch run ${JSON.stringify(active.name)} (id ${active.id}) of job ${run.job} is ${active.status}: ` +
          `retry ${JSON.stringify(run.name)} once it has ended`,
      );
    }
    const job = getCatalog().get(run.job);
    const { planTimeoutMs } = getConfig();
    await client.query(planningLimits(planTimeoutMs).join("; "));
    rows = await resetFailedAttempts(client, job, run.id);
    if (rows === 0) throw new SignalRefusedError(`batch run ${JSON.stringify(run.name)} has no failed rows to retry`);
    const round = run.round + 1;
    const planned = await planChunks(client, job, run.id, round, "failed", run.settings, { timeoutMs: planTimeoutMs });
    await reopenRun(client, run.id, rows);
    await beginRound(client, run.id, round, planned);
    await enqueueChunkQueueJobs(client, run.id, round, 0, run.settings);
    const step: RetryStep = { rows, chunks: planned.chunks };
    await recordStep(client, run.id, "retry", round, step, actor);
    await appendEvent(client, run.id, "retried", {
      step: "control",
      actor,
      round,
      counts: { rows, chunks: planned.chunks },
      detail:
        `${rows} failed row(s) given their attempts again: failed ${run.failedRecords} -> ${run.failedRecords - rows}, ` +
        `retrying ${run.retryableRecords} -> ${run.retryableRecords + rows}`,
    });
    return true;
  }).catch((error: unknown) => {
    // another run of the job started after the check above: it holds the job's one active slot
    if ((error as { constraint?: string }).constraint !== "batch_jobs_one_active_run" || !retrying) throw error;
    throw new SignalRefusedError(
      `another run of job ${retrying.job} started meanwhile: retry ${JSON.stringify(retrying.name)} once it has ended`,
    );
  });
  return { ...result, rows };
}

export async function runHistory(db: WithClient, nameOrId: string): Promise<{ run: Run; events: RunEvent[] }> {
  return db(async (client) => {
    const run = await findRun(client, nameOrId);
    if (!run) throw new RunNotFoundError(`no batch run is named or numbered ${JSON.stringify(nameOrId)}`);
    return { run, events: await listEvents(client, run.id) };
  });
}

/** The job has no schedule in the database: no worker of a release declaring one has started. */
export class ScheduleNotFoundError extends CommandError {
  override name = "ScheduleNotFoundError";
}

/**
 * Pauses or resumes a job's schedule, for every pod: its ticks start no run while it is paused
 * (each recorded as skipped-paused). Idempotent; a run already started goes on.
 */
export async function pauseSchedule(
  db: WithClient,
  job: string,
  paused: boolean,
  actor: string,
): Promise<{ state: ScheduleState; changed: boolean }> {
  const result = await db((client) => setSchedulePaused(client, job, paused, actor));
  if (!result) {
    throw new ScheduleNotFoundError(
      `job ${JSON.stringify(job)} has no schedule in this database: a worker writes its jobs' schedules at its start`,
    );
  }
  return result;
}
