/** Why a job of a run is refused for good: retrying it cannot help. */

/** A job names a run that does not exist (deleted, or never was). */
export class RunMissingError extends Error {
  override name = "RunMissingError";
}

/** What a workflow job would have acted on: a run's step, or one of its chunks. */
export interface JobTarget {
  runId: number;
  step: "plan" | "finish" | "chunk";
  round?: number;
  chunkNo?: number;
}

/** Why nothing may change in a run that has ended. */
export function runEndedReason(status: string): string {
  return status === "cancelled" ? "the run was cancelled" : `the run has already ${status}`;
}

function describeTarget(target: JobTarget): string {
  if (target.step === "plan") return `plan of batch run ${target.runId}`;
  const round = `round ${target.round} of batch run ${target.runId}`;
  return target.step === "finish" ? `finish of ${round}` : `chunk ${target.chunkNo} of ${round}`;
}

/**
 * A job the workflow would not run in its run's present state: a finish of a round that is not
 * the current one or whose chunks have not all ended, a chunk the run does not have or not in
 * this round, any step of a run that has ended. Whether forged, duplicated or overtaken, it
 * changes nothing: its transaction rolls back and the job fails for good
 * (src/worker/batch-task.ts), leaving a `job-refused` event in the run's history.
 */
export class ForgedQueueJobError extends Error {
  override name = "ForgedQueueJobError";

  constructor(
    readonly target: JobTarget,
    reason: string,
  ) {
    super(`${describeTarget(target)} refused: ${reason}`);
  }
}
