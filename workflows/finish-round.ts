import { getConfig } from "../src/config/config";
import { getCatalog } from "../src/config/context";
import type { WithClient } from "../src/db/pool";
import { failedChunks, planChunks } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import { enqueueChunkQueueJobs } from "../src/runs/job-queue";
import { beginRound } from "../src/runs/runs";
import { attemptsRound } from "../src/runs/steps";
import { durableStep } from "./durable-step";
import { completeRun, failRun, settleCancellation } from "./run-endings";
import { assertFinishable } from "./step-guards";

export type FinishResult =
  | { next: "retry-round"; round: number; chunks: number; rows: number; delayMs: number }
  | { next: "completed" }
  | { next: "failed"; error: string }
  | { next: "cancelled" };

/** Fan-in of round `round`: runs once, when its last chunk has ended. */
export async function finishRound(db: WithClient, runId: number, round: number, actor: string) {
  return durableStep(db, { runId, step: "finish", round }, actor, async (client, run): Promise<FinishResult> => {
    await assertFinishable(client, run, round);
    if (run.status === "cancelling") {
      await settleCancellation(client, run, actor);
      return { next: "cancelled" };
    }
    const failures = await failedChunks(client, runId, round);
    if (failures.count > 0) {
      const error = `${failures.count} chunk(s) failed after all their attempts; first error: ${failures.firstError}`;
      await failRun(client, runId, error, { step: "finish", round, actor });
      return { next: "failed", error };
    }
    // a retry command gives the rows their attempts again, and with them the run's retry rounds
    const roundsSince = round - (await attemptsRound(client, runId));
    if (run.retryableRecords > 0 && roundsSince < run.settings.retryRounds) {
      const next = round + 1;
      const job = getCatalog().get(run.job);
      const planned = await planChunks(client, job, runId, next, "retryable", run.settings, {
        timeoutMs: getConfig().planTimeoutMs,
      });
      if (planned.chunks > 0) {
        const delayMs = run.settings.retryDelayMs * 2 ** roundsSince;
        await beginRound(client, runId, next, planned);
        if (run.status !== "paused") await enqueueChunkQueueJobs(client, runId, next, delayMs, run.settings);
        await appendEvent(client, runId, "retry-round", {
          step: "finish",
          actor,
          round: next,
          counts: planned,
          detail: `starts in ${delayMs} ms`,
        });
        return { next: "retry-round", round: next, ...planned, delayMs };
      }
    }
    await completeRun(client, runId, actor);
    return { next: "completed" };
  });
}
