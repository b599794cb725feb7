import type { Logger } from "../src/base/logger";
import { splitForStartingWorker } from "../src/chunks/chunk-split";
import { getCatalog } from "../src/config/context";
import { inTransaction, type WithClient } from "../src/db/pool";
import { appendEvent } from "../src/runs/events";
import { addQueueJob, queueJobKeys, STEP_MAX_ATTEMPTS, TASKS } from "../src/runs/job-queue";
import { findStrandedChunks, findStrandedSteps } from "../src/runs/stranded";
import { recoverDeadWorkers } from "../src/worker/dead-workers";
import type { WorkerRecovery } from "../src/worker/preset";
import { closeChunk } from "./chunk-activity";
import { registerSchedules, requeueStrandedTicks } from "./schedule-tick";

/**
 * The workers' recovery, which their liveness runs before a job pool takes its first job and
 * every few seconds after: the jobs of dead workers are released (src/worker/dead-workers.ts),
 * then work that no job will do gets its job or its ending (healStrandedWork), and a schedule
 * whose tick lost its queue job gets it again (requeueStrandedTicks). Then, once, a
 * starting job pool makes work for its idle slots out of the running chunks
 * (src/chunks/chunk-split.ts splitForStartingWorker), before any slot looks for a job, after
 * writing its jobs' schedules and queueing their next ticks (workflows/schedule-tick.ts).
 */
export function workerRecovery(options: { deadAfterMs: number; actor: string; logger: Logger }): WorkerRecovery {
  const { deadAfterMs, actor, logger } = options;
  return {
    recover: async (db) => {
      const recovered = await db((client) => recoverDeadWorkers(client, { deadAfterMs, actor }));
      if (recovered.pools.length > 0) logger.warn(recovered, "released the jobs of dead workers");
      const healed = await healStrandedWork(db, actor);
      if (healed.requeued + healed.failed + healed.steps > 0) logger.warn(healed, "healed stranded work");
      const ticks = await requeueStrandedTicks(db, getCatalog().jobs);
      if (ticks > 0)
        logger.warn({ schedules: ticks }, "queued again the next tick of schedules whose queue job was gone");
    },
    start: async (db, slots) => {
      const scheduled = await registerSchedules(db, getCatalog().jobs, { forget: false });
      if (scheduled > 0)
        logger.info({ jobs: scheduled }, "worker starting: the jobs' schedules written, their next ticks queued");
      const split = await splitForStartingWorker(db, { jobs: getCatalog(), actor, slots });
      if (split > 0) logger.info({ chunks: split }, "worker starting: split running chunks for its idle slots");
    },
  };
}

/**
 * Gives the work no job will do its job back, or its ending. Run by the workers' periodic
 * recovery (and by a `--once` pod before it takes jobs); repeating it is harmless: a job added
 * twice under its key is one job, and a step or chunk that has already run replays or skips.
 *
 * - a stranded chunk (src/runs/stranded.ts findStrandedChunks): a chunk whose job is gone, or
 *   whose key holds a job added by hand that ran out of its fewer attempts, gets a new one; a
 *   chunk whose own job failed for good fails;
 * - a stranded step (findStrandedSteps): a plan or finish that is due and has no job gets one.
 */
export async function healStrandedWork(
  db: WithClient,
  actor: string,
): Promise<{ requeued: number; failed: number; steps: number }> {
  const stranded = await db(findStrandedChunks);
  const exhausted = stranded.filter((found) => found.exhausted);
  for (const chunk of exhausted) {
    const error = chunk.lastError ?? "the chunk's job failed all its attempts";
    await closeChunk(db, chunk, { status: "failed", error }, actor);
  }
  const missing = stranded.filter((found) => !found.exhausted);
  for (const chunk of missing) {
    await db((client) =>
      inTransaction(client, async () => {
        const payload = { run: chunk.runId, round: chunk.round, chunk: chunk.chunkNo };
        const key = queueJobKeys.chunk(chunk.runId, chunk.round, chunk.chunkNo);
        await addQueueJob(client, TASKS.chunk, payload, key, chunk.chunkMaxAttempts);
        await appendEvent(client, chunk.runId, "chunk-requeued", {
          step: "chunk",
          actor,
          round: chunk.round,
          chunkNo: chunk.chunkNo,
          detail: "its job was gone, or one added by hand had run out, while the chunk had not ended",
        });
      }),
    );
  }
  const steps = await db(findStrandedSteps);
  for (const { runId, step, round } of steps) {
    await db((client) =>
      inTransaction(client, async () => {
        if (step === "plan")
          await addQueueJob(client, TASKS.plan, { run: runId }, queueJobKeys.plan(runId), STEP_MAX_ATTEMPTS);
        else
          await addQueueJob(
            client,
            TASKS.finish,
            { run: runId, round },
            queueJobKeys.finish(runId, round),
            STEP_MAX_ATTEMPTS,
          );
        await appendEvent(client, runId, "step-requeued", {
          step,
          actor,
          round,
          detail: "its job was gone while the step was due",
        });
      }),
    );
  }
  return { requeued: missing.length, failed: exhausted.length, steps: steps.length };
}
