import type { PoolClient } from "pg";
import { CommandError } from "../src/base/command-error";
import { inTransaction, type WithClient } from "../src/db/pool";
import { cancelIdleChunks, findCanaryEnd, releaseDeferredChunks } from "../src/runs/chunks";
import { appendEvent, listEvents } from "../src/runs/events";
import { enqueueChunkQueueJobs, removeWaitingQueueJobs } from "../src/runs/job-queue";
import type { Run, RunEvent } from "../src/runs/model";
import { findRun } from "../src/runs/run-reference";
import { lockRun, setRunStatus } from "../src/runs/runs";
import { findStepResult } from "../src/runs/steps";
import { settleCancellation } from "./run-endings";

/**
 * Signals to a batch run, from any machine with database access. Each takes the run's lock,
 * changes its status, adjusts its waiting jobs and records itself in the run's history, in one
 * transaction. Each is idempotent: asking for the state a run is already in changes nothing.
 *
 * - pause: no chunk starts any more (waiting chunk jobs are removed); running chunks finish.
 * - resume: the chunks not yet done are enqueued again; after a canary, the chunks deferred past it too.
 * - cancel: waiting jobs are removed, running chunks stop after their current slice, and the
 *   run ends `cancelled` once none runs. Rows not processed stay pending, for a later run.
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

export async function runHistory(db: WithClient, nameOrId: string): Promise<{ run: Run; events: RunEvent[] }> {
  return db(async (client) => {
    const run = await findRun(client, nameOrId);
    if (!run) throw new RunNotFoundError(`no batch run is named or numbered ${JSON.stringify(nameOrId)}`);
    return { run, events: await listEvents(client, run.id) };
  });
}
