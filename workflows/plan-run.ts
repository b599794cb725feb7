import type { WithClient } from "../src/db/pool";
import { planChunks } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import { enqueueChunkJobs } from "../src/runs/job-queue";
import { beginRound } from "../src/runs/runs";
import { durableStep } from "./durable-step";
import { completeRun } from "./run-endings";
import { assertPlannable } from "./step-guards";

export type PlanResult = { chunks: number; rows: number };

/**
 * Chooses the rows (pending, or failed with attempts left), splits them into chunks, enqueues
 * them. A run whose rows were taken between its start and its plan (by hand: no other run is
 * active) finds none and ends completed.
 */
export async function planRun(db: WithClient, runId: number, actor: string) {
  return durableStep(db, { runId, step: "plan", round: 0 }, actor, async (client, run): Promise<PlanResult> => {
    assertPlannable(run);
    const planned = await planChunks(client, runId, 0, "open", run.settings);
    await beginRound(client, runId, 0, planned);
    await appendEvent(client, runId, "planned", { step: "plan", actor, round: 0, counts: planned });
    if (planned.chunks === 0) await completeRun(client, runId, actor);
    else if (run.status !== "paused") await enqueueChunkJobs(client, runId, 0, 0, run.settings);
    return planned;
  });
}
