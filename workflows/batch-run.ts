import type { PoolClient } from "pg";
import { type ChunkDeps, type ChunkRef, processChunk } from "../src/chunks/process-chunk";
import type { Config } from "../src/config";
import { inTransaction, type WithClient } from "../src/db/pool";
import {
  addStepJob,
  beginRound,
  endChunk,
  endRun,
  enqueueChunkJobs,
  failedChunks,
  insertRun,
  jobKeys,
  planChunks,
  type Run,
  type RunSettings,
  TASKS,
} from "../src/runs/store";
import { durableStep } from "./durable-step";

/**
 * A batch run as a durable workflow on graphile-worker:
 *
 *   start (idempotent by name) -> plan -> chunks (fan-out) -> finish (fan-in)
 *     -> retry round (only the retryable failed rows, after a growing delay) -> finish -> ...
 *     -> completed
 *
 * Each step is a graphile-worker job whose result and next transition commit together
 * (durableStep); chunks are the activities that touch users.
 */

/** Steps only touch the database: graphile-worker's default attempts and backoff suit them. */
const STEP_MAX_ATTEMPTS = 25;

export function runSettings(config: Config): RunSettings {
  return {
    claimSize: config.claimSize,
    maxAttempts: config.maxAttempts,
    retryRounds: config.retryRounds,
    retryDelayMs: config.retryDelayMs,
    chunkMaxAttempts: config.chunkMaxAttempts,
  };
}

/** Starts the run named `name`, or returns it unchanged if it exists. */
export async function startRun(
  db: WithClient,
  name: string,
  settings: RunSettings,
  startedBy: string,
): Promise<{ run: Run; created: boolean }> {
  return db((client) =>
    inTransaction(client, async () => {
      const started = await insertRun(client, name, settings, startedBy);
      if (started.created) {
        await addStepJob(client, TASKS.plan, { run: started.run.id }, jobKeys.plan(started.run.id), STEP_MAX_ATTEMPTS);
      }
      return started;
    }),
  );
}

export interface PlanResult {
  chunks: number;
  rows: number;
}

/** Chooses the rows (pending, or failed with attempts left), splits them into chunks, enqueues them. */
export async function planRun(db: WithClient, runId: number, worker: string) {
  return durableStep(db, { runId, step: "plan", round: 0 }, worker, async (client, run): Promise<PlanResult> => {
    const planned = await planChunks(client, runId, 0, "open", run.settings);
    await beginRound(client, runId, 0, planned);
    if (planned.chunks === 0) await endRun(client, runId, { status: "completed" });
    else await enqueueChunkJobs(client, runId, 0, 0, run.settings);
    return planned;
  });
}

export type FinishResult =
  | { next: "retry-round"; round: number; chunks: number; rows: number; delayMs: number }
  | { next: "completed" }
  | { next: "failed"; error: string };

/** Fan-in of round `round`: runs once, when its last chunk has ended. */
export async function finishRound(db: WithClient, runId: number, round: number, worker: string) {
  return durableStep(db, { runId, step: "finish", round }, worker, async (client, run): Promise<FinishResult> => {
    const failures = await failedChunks(client, runId, round);
    if (failures.count > 0) {
      const error = `${failures.count} chunk(s) failed after all their attempts; first error: ${failures.firstError}`;
      await endRun(client, runId, { status: "failed", error });
      return { next: "failed", error };
    }
    if (run.retryableRecords > 0 && round < run.settings.retryRounds) {
      const next = round + 1;
      const planned = await planChunks(client, runId, next, "retryable", run.settings);
      if (planned.chunks > 0) {
        const delayMs = run.settings.retryDelayMs * 2 ** round;
        await beginRound(client, runId, next, planned);
        await enqueueChunkJobs(client, runId, next, delayMs, run.settings);
        return { next: "retry-round", round: next, ...planned, delayMs };
      }
    }
    await endRun(client, runId, { status: "completed" });
    return { next: "completed" };
  });
}

/** Ends the chunk and, for the round's last chunk, enqueues the fan-in in the same transaction. */
async function closeChunk(
  client: PoolClient,
  ref: ChunkRef,
  outcome: { status: "done" } | { status: "failed"; error: string },
): Promise<void> {
  const { lastOfRound } = await endChunk(client, ref.runId, ref.round, ref.chunkNo, outcome);
  if (lastOfRound) {
    await addStepJob(
      client,
      TASKS.finish,
      { run: ref.runId, round: ref.round },
      jobKeys.finish(ref.runId, ref.round),
      STEP_MAX_ATTEMPTS,
    );
  }
}

export interface JobAttempt {
  number: number;
  max: number;
}

/**
 * The chunk activity. A chunk that throws is retried by graphile-worker with its backoff; on
 * its last attempt the failure is recorded so that the round still ends (and the run fails).
 */
export async function runChunk(deps: ChunkDeps, ref: ChunkRef, attempt: JobAttempt) {
  let outcome: Awaited<ReturnType<typeof processChunk>>;
  try {
    outcome = await processChunk(deps, ref);
  } catch (error) {
    if (attempt.number >= attempt.max) {
      const message = error instanceof Error ? error.message : String(error);
      await deps.db((client) =>
        inTransaction(client, () => closeChunk(client, ref, { status: "failed", error: message })),
      );
    }
    throw error;
  }
  if (outcome.kind === "finished") {
    await deps.db((client) => inTransaction(client, () => closeChunk(client, ref, { status: "done" })));
  }
  return outcome;
}
