import type { PoolClient } from "pg";
import { type ChunkDeps, type ChunkRef, processChunk } from "../src/chunks/process-chunk";
import { CommandError } from "../src/cli-output";
import type { Config } from "../src/config";
import { inTransaction, type WithClient } from "../src/db/pool";
import {
  addJob,
  appendEvent,
  beginRound,
  type ChunkEnding,
  countRunningChunks,
  endChunk,
  endRun,
  enqueueChunkJobs,
  failedChunks,
  findActiveRun,
  findStrandedChunks,
  insertRun,
  jobKeys,
  lockRun,
  planChunks,
  type Run,
  type RunSettings,
  setRunStatus,
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
 * (durableStep); chunks are the activities that touch users. Every state change is appended to
 * the run's history (batch_events). Pause, resume and cancel are in batch-control.ts.
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
    hints: { workers: config.workers, rowConcurrency: config.rowConcurrency },
  };
}

/** Another run is active: it owns the rows a new run would work through. */
export class RunConflictError extends CommandError {
  override name = "RunConflictError";
}

/**
 * Starts the run named `name`, or returns it unchanged if it exists. Refused while another run
 * is active (pending, running, paused or cancelling): a row belongs to at most one active run.
 */
export async function startRun(
  db: WithClient,
  name: string,
  settings: RunSettings,
  actor: string,
): Promise<{ run: Run; created: boolean }> {
  const start = () =>
    db((client) =>
      inTransaction(client, async () => {
        const started = await insertRun(client, name, settings, actor);
        if (started.created) {
          const runId = started.run.id;
          await addJob(client, TASKS.plan, { run: runId }, jobKeys.plan(runId), STEP_MAX_ATTEMPTS);
          await appendEvent(client, runId, "started", { step: "start", actor, detail: JSON.stringify(settings) });
        }
        return started;
      }),
    );
  return start().catch(async (error: { constraint?: string }) => {
    if (error.constraint !== "batch_jobs_one_active_run") throw error;
    const active = await db(findActiveRun);
    throw new RunConflictError(
      `batch run ${JSON.stringify(active?.name)} (id ${active?.id}) is ${active?.status} over the same rows: ` +
        "wait for it to end, or cancel it, before starting another",
    );
  });
}

export type PlanResult = { chunks: number; rows: number } | { skipped: string };

/** Chooses the rows (pending, or failed with attempts left), splits them into chunks, enqueues them. */
export async function planRun(db: WithClient, runId: number, actor: string) {
  return durableStep(db, { runId, step: "plan", round: 0 }, actor, async (client, run): Promise<PlanResult> => {
    if (run.status !== "pending" && run.status !== "paused") return { skipped: `run is ${run.status}` };
    const planned = await planChunks(client, runId, 0, "open", run.settings);
    await beginRound(client, runId, 0, planned);
    await appendEvent(client, runId, "planned", { step: "plan", actor, round: 0, counts: planned });
    if (planned.chunks === 0) await complete(client, runId, actor);
    else if (run.status !== "paused") await enqueueChunkJobs(client, runId, 0, 0, run.settings);
    return planned;
  });
}

export type FinishResult =
  | { next: "retry-round"; round: number; chunks: number; rows: number; delayMs: number }
  | { next: "completed" }
  | { next: "failed"; error: string }
  | { next: "cancelled" };

/** Fan-in of round `round`: runs once, when its last chunk has ended. */
export async function finishRound(db: WithClient, runId: number, round: number, actor: string) {
  return durableStep(db, { runId, step: "finish", round }, actor, async (client, run): Promise<FinishResult> => {
    if (run.status === "cancelling" || run.status === "cancelled") {
      await settleCancellation(client, run, actor);
      return { next: "cancelled" };
    }
    const failures = await failedChunks(client, runId, round);
    if (failures.count > 0) {
      const error = `${failures.count} chunk(s) failed after all their attempts; first error: ${failures.firstError}`;
      await endRun(client, runId, { status: "failed", error });
      await appendEvent(client, runId, "failed", { step: "finish", actor, round, detail: error });
      return { next: "failed", error };
    }
    if (run.retryableRecords > 0 && round < run.settings.retryRounds) {
      const next = round + 1;
      const planned = await planChunks(client, runId, next, "retryable", run.settings);
      if (planned.chunks > 0) {
        const delayMs = run.settings.retryDelayMs * 2 ** round;
        await beginRound(client, runId, next, planned);
        if (run.status !== "paused") await enqueueChunkJobs(client, runId, next, delayMs, run.settings);
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
    await complete(client, runId, actor);
    return { next: "completed" };
  });
}

async function complete(client: PoolClient, runId: number, actor: string): Promise<void> {
  await endRun(client, runId, { status: "completed" });
  await appendEvent(client, runId, "completed", { step: "finish", actor });
}

/** A cancelling run becomes cancelled once none of its chunks is running. */
export async function settleCancellation(client: PoolClient, run: Run, actor: string): Promise<boolean> {
  if (run.status !== "cancelling" || (await countRunningChunks(client, run.id)) > 0) return false;
  await setRunStatus(client, run.id, "cancelled");
  await appendEvent(client, run.id, "cancelled", { step: "control", actor });
  return true;
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
async function closeChunk(db: WithClient, ref: ChunkRef, ending: ChunkEnding, actor: string): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      const run = await lockRun(client, ref.runId);
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
      } else if (ended.lastOfRound) {
        await addJob(
          client,
          TASKS.finish,
          { run: ref.runId, round: ref.round },
          jobKeys.finish(ref.runId, ref.round),
          STEP_MAX_ATTEMPTS,
        );
        await appendEvent(client, ref.runId, "round-ended", { step: "chunk", actor, round: ref.round });
      }
    }),
  );
}

/** Puts the chunk's job back in the queue, fresh, for another worker to take at once. */
async function handBackChunk(db: WithClient, ref: ChunkRef, job: ChunkJob, actor: string): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      const payload = { run: ref.runId, round: ref.round, chunk: ref.chunkNo };
      await addJob(client, TASKS.chunk, payload, job.key, job.maxAttempts);
      await appendEvent(client, ref.runId, "chunk-handed-back", {
        step: "chunk",
        actor,
        round: ref.round,
        chunkNo: ref.chunkNo,
      });
    }),
  );
}

/**
 * Gives every stranded chunk (src/runs/store.ts findStrandedChunks) its ending: a chunk whose
 * job is gone gets a new one, a chunk whose job failed for good fails. Run by the workers'
 * periodic recovery; repeating it is harmless.
 */
export async function healStrandedChunks(db: WithClient, actor: string): Promise<{ requeued: number; failed: number }> {
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
        const key = jobKeys.chunk(chunk.runId, chunk.round, chunk.chunkNo);
        await addJob(client, TASKS.chunk, payload, key, chunk.chunkMaxAttempts);
        await appendEvent(client, chunk.runId, "chunk-requeued", {
          step: "chunk",
          actor,
          round: chunk.round,
          chunkNo: chunk.chunkNo,
          detail: "its job was gone while the chunk had not ended",
        });
      }),
    );
  }
  return { requeued: missing.length, failed: exhausted.length };
}

/** The graphile-worker job carrying a chunk, as far as the workflow needs it. */
export interface ChunkJob {
  key: string;
  attempt: number;
  maxAttempts: number;
}

const CANCELLED: ReadonlySet<string> = new Set(["cancelling", "cancelled"]);

/**
 * The chunk activity. A chunk that throws is retried by graphile-worker with its backoff; on
 * its last attempt the failure is recorded so that the round still ends (and the run fails). A
 * chunk of a paused run waits for the resume; one of a cancelled run ends cancelled.
 */
export async function runChunk(deps: ChunkDeps, ref: ChunkRef, job: ChunkJob) {
  let outcome: Awaited<ReturnType<typeof processChunk>>;
  try {
    outcome = await processChunk(deps, ref);
  } catch (error) {
    if (job.attempt >= job.maxAttempts) {
      const message = error instanceof Error ? error.message : String(error);
      await closeChunk(deps.db, ref, { status: "failed", error: message }, deps.worker);
    }
    throw error;
  }
  if (outcome.kind === "finished") await closeChunk(deps.db, ref, { status: "done" }, deps.worker);
  else if (outcome.kind === "handed-back") await handBackChunk(deps.db, ref, job, deps.worker);
  else if (outcome.kind === "stopped" && CANCELLED.has(outcome.runStatus)) {
    await closeChunk(deps.db, ref, { status: "cancelled" }, deps.worker);
  }
  return outcome;
}
