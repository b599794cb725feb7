import type { PoolClient } from "pg";
import { countOpenChunks } from "../src/runs/chunks";
import { ForgedQueueJobError, runEndedReason } from "../src/runs/errors";
import { ENDED_RUN_STATUSES, type Run } from "../src/runs/model";

/**
 * What the workflow's steps check, under the run's lock, before they change anything: that the
 * run is in the state the workflow would have left it in for this step. A job that finds
 * otherwise (forged, duplicated, or overtaken by a cancel) is refused with a ForgedQueueJobError, and
 * its transaction changes nothing.
 */

/** The plan runs once, for a run started and not yet planned (paused before it planned, too). */
export function assertPlannable(run: Run): void {
  if (run.status !== "pending" && run.status !== "paused") {
    throw new ForgedQueueJobError({ runId: run.id, step: "plan" }, `the run is ${run.status}`);
  }
}

/**
 * A finish is for the run's current round, once every chunk of that round has ended, while the
 * run goes on (running, or paused after its chunks finished) or is being cancelled.
 */
export async function assertFinishable(client: PoolClient, run: Run, round: number): Promise<void> {
  const refuse = (reason: string) => new ForgedQueueJobError({ runId: run.id, step: "finish", round }, reason);
  if (run.status === "pending") throw refuse("the run has not been planned yet");
  if (ENDED_RUN_STATUSES.has(run.status)) throw refuse(runEndedReason(run.status));
  if (round !== run.round) throw refuse(`the run's current round is ${run.round}`);
  const open = await countOpenChunks(client, run.id, round);
  if (open > 0) throw refuse(`the round still has ${open} chunk(s) queued or running`);
}

/** A chunk ends in its run's current round, while the run has not ended. */
export function assertChunkClosable(run: Run, ref: { round: number; chunkNo: number }): void {
  const refuse = (reason: string) => new ForgedQueueJobError({ runId: run.id, step: "chunk", ...ref }, reason);
  if (ENDED_RUN_STATUSES.has(run.status)) throw refuse(runEndedReason(run.status));
  if (ref.round !== run.round) throw refuse(`the run's current round is ${run.round}`);
}
