import { type SplitRequest, splitLargestRunning } from "../src/chunks/chunk-split";
import { type ChunkDeps, type ChunkRef, workThroughChunk } from "../src/chunks/work-through-chunk";
import { inTransaction, type PoolClient, type WithClient } from "../src/db/pool";
import { endChunk, findCanaryEnd, findChunkStatus } from "../src/runs/chunks";
import { ForgedQueueJobError, RunMissingError } from "../src/runs/errors";
import { appendEvent } from "../src/runs/events";
import { addQueueJob, queueJobKeys, STEP_MAX_ATTEMPTS, TASKS } from "../src/runs/job-queue";
import { type ChunkEnding, OPEN_CHUNK_STATUSES, type Run } from "../src/runs/model";
import { lockRun, setRunStatus } from "../src/runs/runs";
import { settleCancellation } from "./run-endings";
import { assertChunkClosable } from "./step-guards";

/** The graphile-worker job carrying a chunk, as far as the workflow needs it. */
export interface ChunkQueueJob {
  key: string;
  attempt: number;
  maxAttempts: number;
}

/**
 * The chunk activity, as its job runs it: works through the chunk, then records how it ended
 * (closed done or cancelled, or handed back to the queue). A chunk that throws is retried by
 * graphile-worker with its backoff; on its last attempt the failure is recorded so that the
 * round still ends (and the run fails). A chunk of a paused run waits for the resume; one of a
 * cancelling run ends cancelled. A job the run would not run (src/chunks/chunk-start.ts)
 * changes nothing and fails for good.
 */
export async function runChunkQueueJob(deps: ChunkDeps, ref: ChunkRef, job: ChunkQueueJob) {
  let outcome: Awaited<ReturnType<typeof workThroughChunk>>;
  try {
    outcome = await workThroughChunk(deps, ref);
  } catch (error) {
    const refused = error instanceof ForgedQueueJobError || error instanceof RunMissingError;
    if (!refused && job.attempt >= job.maxAttempts) {
      const message = error instanceof Error ? error.message : String(error);
      await closeChunk(deps.db, ref, { status: "failed", error: message }, deps.worker);
    }
    throw error;
  }
  if (outcome.kind === "finished") {
    await closeChunk(deps.db, ref, { status: "done" }, deps.worker);
    // at the round's end, half of the largest chunk still running, for this job's slot to take next
    if (deps.splitWhenIdle) {
      const split: SplitRequest = {
        jobs: deps.jobs,
        runId: ref.runId,
        round: ref.round,
        actor: deps.worker,
        occasion: "an idle slot",
        slots: 1,
        sliceRows: outcome.sliceRows,
      };
      await deps.db((client) => splitLargestRunning(client, split));
    }
  } else if (outcome.kind === "handed-back") await handBackChunk(deps.db, ref, job, deps.worker);
  else if (outcome.kind === "stopped" && outcome.runStatus === "cancelling") {
    await closeChunk(deps.db, ref, { status: "cancelled" }, deps.worker);
  }
  return outcome;
}

const CHUNK_EVENTS: Record<ChunkEnding["status"], string> = {
  done: "chunk-done",
  failed: "chunk-failed",
  cancelled: "chunk-cancelled",
};

/**
 * Ends the chunk; for the round's last chunk, enqueues the fan-in in the same transaction (or,
 * when the run is being cancelled, settles the cancel).
 */
export async function closeChunk(db: WithClient, ref: ChunkRef, ending: ChunkEnding, actor: string): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      const run = await lockRun(client, ref.runId);
      assertChunkClosable(run, ref);
      const ended = await endChunk(client, ref.runId, ref.round, ref.chunkNo, ending);
      if (!ended.ended) return;
      await appendEvent(client, ref.runId, CHUNK_EVENTS[ending.status], {
        step: "chunk",
        actor,
        round: ref.round,
        chunkNo: ref.chunkNo,
        counts: { chunkCompleted: ended.rowsCompleted, chunkFailed: ended.rowsFailed },
        detail: ending.status === "failed" ? ending.error : undefined,
      });
      if (run.status === "cancelling") {
        await settleCancellation(client, run, actor);
      } else if (ref.round === 0 && run.settings.canary !== undefined && !ended.lastOfRound) {
        await pauseAfterCanary(client, run, actor);
      } else if (ended.lastOfRound) {
        await addQueueJob(
          client,
          TASKS.finish,
          { run: ref.runId, round: ref.round },
          queueJobKeys.finish(ref.runId, ref.round),
          STEP_MAX_ATTEMPTS,
        );
        await appendEvent(client, ref.runId, "round-ended", { step: "chunk", actor, round: ref.round });
      }
    }),
  );
}

/**
 * Pauses the run once its canary has ended (the chunk just closed was its last open one: only
 * deferred chunks are left), for a person to look; `batch resume` goes on with the rest. A run
 * paused by hand during its canary stays paused. It pauses whatever became of the canary's rows,
 * all of them failed included: the person decides, resuming or cancelling.
 */
async function pauseAfterCanary(client: PoolClient, run: Run, actor: string): Promise<void> {
  const canary = await findCanaryEnd(client, run.id);
  if (!canary) return;
  if (run.status === "running") await setRunStatus(client, run.id, "paused");
  await appendEvent(client, run.id, "canary-ended", {
    step: "chunk",
    actor,
    round: 0,
    counts: { canaryRows: canary.rows, canaryFailed: canary.failed },
    detail: `paused after its canary: ${canary.rows} rows, ${canary.failed} failed; resume to go on with the rest`,
  });
}

/**
 * Puts the chunk's job back in the queue, fresh, for another worker to take at once; unless
 * another job has ended the chunk meanwhile.
 */
async function handBackChunk(db: WithClient, ref: ChunkRef, job: ChunkQueueJob, actor: string): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      await lockRun(client, ref.runId);
      const status = await findChunkStatus(client, ref.runId, ref.round, ref.chunkNo);
      if (!status || !OPEN_CHUNK_STATUSES.has(status)) return;
      const payload = { run: ref.runId, round: ref.round, chunk: ref.chunkNo };
      await addQueueJob(client, TASKS.chunk, payload, job.key, job.maxAttempts);
      await appendEvent(client, ref.runId, "chunk-handed-back", {
        step: "chunk",
        actor,
        round: ref.round,
        chunkNo: ref.chunkNo,
      });
    }),
  );
}
