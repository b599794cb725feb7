import type { PoolClient } from "pg";
import { inTransaction } from "../db/pool";
import { findChunkStatus, markChunkRunning } from "../runs/chunks";
import { ForgedQueueJobError, runEndedReason } from "../runs/errors";
import {
  type ChunkRange,
  ENDED_RUN_STATUSES,
  OPEN_CHUNK_STATUSES,
  type RunSettings,
  type RunStatus,
} from "../runs/model";
import { lockRun } from "../runs/runs";

/** What a chunk job found when it came to start its chunk. */
export type ChunkStart =
  | { kind: "started"; chunk: ChunkRange; job: string; settings: RunSettings }
  /** The run is paused (the chunk waits for the resume) or cancelling (the chunk ends cancelled). */
  | { kind: "stopped"; runStatus: RunStatus }
  /** The chunk has ended: this job is a repeat of the one that ended it. */
  | { kind: "ended" };

/**
 * Starts the chunk `ref` on `worker` if its run would run it now, under a shared lock on the
 * run's row: the chunk starts either before a pause or cancel commits (and counts as running
 * for it) or after (and sees it). A job for a chunk the run does not have, or has in another
 * round than its current one, or of a run that has ended, is refused.
 */
export function beginChunk(
  client: PoolClient,
  ref: { runId: number; round: number; chunkNo: number },
  worker: string,
): Promise<ChunkStart> {
  return inTransaction(client, async () => {
    const run = await lockRun(client, ref.runId, "shared");
    const status = await findChunkStatus(client, ref.runId, ref.round, ref.chunkNo);
    const refuse = (reason: string) => new ForgedQueueJobError({ ...ref, step: "chunk" }, reason);
    if (!status) throw refuse("the run has no such chunk");
    if (!OPEN_CHUNK_STATUSES.has(status)) return { kind: "ended" };
    if (ref.round !== run.round) throw refuse(`the run's current round is ${run.round}`);
    if (ENDED_RUN_STATUSES.has(run.status)) throw refuse(runEndedReason(run.status));
    if (run.status !== "running") return { kind: "stopped", runStatus: run.status };
    const chunk = await markChunkRunning(client, ref.runId, ref.round, ref.chunkNo, worker);
    return { kind: "started", chunk, job: run.job, settings: run.settings };
  });
}
