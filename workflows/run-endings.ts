import type { PoolClient } from "pg";
import { getCatalog } from "../src/config/context";
import type { HookContext, JobDefinition } from "../src/jobs/define";
import { runParamsFor } from "../src/jobs/params";
import { countOpenChunks } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import type { Run } from "../src/runs/model";
import { endRun, getRun, setRunStatus } from "../src/runs/runs";
import { wakeQueuedTick } from "../src/runs/schedules";

/**
 * How a run ends: completed by its plan or its last finish, failed by its finish (or refused by
 * its job's beforeRun), or cancelled once its chunks have ended. Each ending runs the job's
 * afterRun hook in the same transaction: once.
 */

export async function completeRun(client: PoolClient, runId: number, actor: string): Promise<void> {
  await endRun(client, runId, { status: "completed" });
  await appendEvent(client, runId, "completed", { step: "finish", actor });
  await onRunEnded(client, runId, actor);
}

export async function failRun(
  client: PoolClient,
  runId: number,
  error: string,
  at: { step: "plan" | "finish"; round: number; actor: string },
): Promise<void> {
  await endRun(client, runId, { status: "failed", error });
  await appendEvent(client, runId, "failed", { step: at.step, actor: at.actor, round: at.round, detail: error });
  await onRunEnded(client, runId, at.actor);
}

/** A cancelling run becomes cancelled once every one of its chunks has ended. */
export async function settleCancellation(client: PoolClient, run: Run, actor: string): Promise<boolean> {
  if (run.status !== "cancelling" || (await countOpenChunks(client, run.id)) > 0) return false;
  await setRunStatus(client, run.id, "cancelled");
  await appendEvent(client, run.id, "cancelled", { step: "control", actor });
  await onRunEnded(client, run.id, actor);
  return true;
}

/** A hook's view of the run and of the transaction it runs in. */
export function hookContext(client: PoolClient, job: JobDefinition, run: Run): HookContext {
  return {
    run: {
      id: run.id,
      params: runParamsFor(job, run.id, run.settings.params),
      name: run.name,
      job: run.job,
      status: run.status,
      totalRecords: run.totalRecords,
      completedRecords: run.completedRecords,
      failedRecords: run.failedRecords,
    },
    query: async <Row>(text: string, values?: unknown[]) => (await client.query(text, values)).rows as Row[],
  };
}

/**
 * Runs a hook of the job inside a savepoint: a hook that throws leaves the step's own work
 * standing and only its writes are undone. Returns the hook's result, or its error's message.
 */
export async function runHook(
  client: PoolClient,
  job: JobDefinition,
  hook: "beforeRun" | "afterRun",
  run: Run,
): Promise<{ ok: true; result: unknown } | { ok: false; error: string }> {
  await client.query("SAVEPOINT job_hook");
  try {
    const result = await job[hook]?.(hookContext(client, job, run));
    await client.query("RELEASE SAVEPOINT job_hook");
    return { ok: true, result: result ?? null };
  } catch (error) {
    await client.query("ROLLBACK TO SAVEPOINT job_hook");
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * The job's afterRun, once the run has ended; what it returned or threw goes into the run's
 * history. A tick of the job's schedule queued behind the run is then decided.
 */
async function onRunEnded(client: PoolClient, runId: number, actor: string): Promise<void> {
  const run = await getRun(client, runId);
  if (run) await wakeQueuedTick(client, run.job);
  const job: JobDefinition | undefined = run ? getCatalog().jobs.find((known) => known.name === run.job) : undefined;
  if (!run || !job?.afterRun) return;
  const outcome = await runHook(client, job, "afterRun", run);
  await appendEvent(client, runId, outcome.ok ? "after-run" : "after-run-failed", {
    step: "finish",
    actor,
    detail: outcome.ok ? JSON.stringify(outcome.result).slice(0, 2000) : outcome.error,
  });
}
