import type { PoolClient } from "pg";
import { getConfig } from "../src/config/config";
import { getCatalog } from "../src/config/context";
import type { WithClient } from "../src/db/pool";
import { deferPastCanary, type PlannedChunks, planChunks, type Sampling } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import { enqueueChunkQueueJobs } from "../src/runs/job-queue";
import type { Run } from "../src/runs/model";
import { beginRound } from "../src/runs/runs";
import { durableStep, durableStepIn } from "./durable-step";
import { completeRun, failRun, runHook } from "./run-endings";
import { assertPlannable } from "./step-guards";

export type PlanResult = (PlannedChunks & { beforeRun?: unknown }) | { refused: string };

/** `sampling`: when open rows are sampled rather than counted (planChunks; its default otherwise). */
export interface PlanOptions {
  sampling?: Sampling;
}

const PLAN_STEP = { step: "plan", round: 0 } as const;

/**
 * The plan step, the one place a run is planned: runs the job's beforeRun (which may refuse the
 * run), chooses the rows (pending, or failed with attempts left), splits them into chunks and
 * enqueues them. A run whose rows were taken between its start and its plan (by hand: no other
 * run of the job is active) finds none and ends completed.
 */
async function plan(client: PoolClient, run: Run, actor: string, options: PlanOptions): Promise<PlanResult> {
  assertPlannable(run);
  const job = getCatalog().get(run.job);
  let beforeRun: unknown;
  if (job.beforeRun) {
    const outcome = await runHook(client, job, "beforeRun", run);
    if (!outcome.ok) {
      const refused = `refused by job ${job.name}'s beforeRun: ${outcome.error}`;
      await failRun(client, run.id, refused, { step: "plan", round: 0, actor });
      return { refused };
    }
    beforeRun = outcome.result;
  }
  const planned = await planChunks(client, job, run.id, 0, "open", run.settings, {
    timeoutMs: getConfig().planTimeoutMs,
    sampling: options.sampling,
  });
  await beginRound(client, run.id, 0, planned);
  const { canary } = run.settings;
  // with a canary, round 0 is cut after its rows: the chunks past it wait, deferred, for the resume
  let counts: Record<string, number> = planned;
  if (canary !== undefined) {
    const cut = await deferPastCanary(client, job, run.id, run.settings, canary);
    counts = { ...planned, chunks: planned.chunks + cut.added, canary, deferred: cut.deferred };
  }
  // a sampled plan's total is an estimate until its chunks end (endChunk makes it exact)
  const estimated = planned.samplePercent !== undefined;
  await appendEvent(client, run.id, "planned", {
    step: "plan",
    actor,
    round: 0,
    counts: estimated ? { ...counts, estimated: 1 } : counts,
    detail: estimated
      ? `rows estimated from a ${planned.samplePercent}% block sample: each chunk's count is exact once it ends`
      : undefined,
  });
  if (planned.chunks === 0) await completeRun(client, run.id, actor);
  else if (run.status !== "paused") await enqueueChunkQueueJobs(client, run.id, 0, 0, run.settings);
  return beforeRun === undefined ? planned : { ...planned, beforeRun };
}

/** The plan step as its job runs it (batch_plan), in a transaction of its own. */
export function planRun(db: WithClient, runId: number, actor: string, options: PlanOptions = {}) {
  return durableStep(db, { runId, ...PLAN_STEP }, actor, (client, run) => plan(client, run, actor, options));
}

/** The plan step in the starter's transaction: the run starts planned, and no plan job is added. */
export function planRunIn(client: PoolClient, runId: number, actor: string, options: PlanOptions = {}) {
  return durableStepIn(client, { runId, ...PLAN_STEP }, actor, (client, run) => plan(client, run, actor, options));
}
