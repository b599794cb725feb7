import type { PoolClient } from "pg";
import { type ChunkDeps, type ChunkRef, processChunk } from "../src/chunks/process-chunk";
import { UsageError } from "../src/cli-args";
import { CommandError } from "../src/cli-output";
import type { Config } from "../src/config";
import { inTransaction, type WithClient } from "../src/db/pool";
import { ForgedJobError } from "../src/runs/forged-job";
import { isIdReference } from "../src/runs/run-reference";
import {
  addJob,
  appendEvent,
  beginRound,
  type ChunkEnding,
  countOpenChunks,
  endChunk,
  endRun,
  enqueueChunkJobs,
  failedChunks,
  findActiveRun,
  findChunkStatus,
  hasRowsToProcess,
  insertRun,
  jobKeys,
  lockRun,
  OPEN_CHUNK_STATUSES,
  planChunks,
  type Run,
  RunMissingError,
  type RunSettings,
  setRunStatus,
  TASKS,
} from "../src/runs/store";
import { durableStep } from "./durable-step";
import { assertChunkClosable, assertFinishable, assertPlannable } from "./step-guards";

/**
 * A batch run as a durable workflow on graphile-worker:
 *
 *   start (idempotent by name) -> plan -> chunks (fan-out) -> finish (fan-in)
 *     -> retry round (only the retryable failed rows, after a growing delay) -> finish -> ...
 *     -> completed
 *
 * Each step is a graphile-worker job whose result and next transition commit together
 * (durableStep); chunks are the activities that touch users. Each checks first, under the run's
 * lock, that the run is where the workflow would have it (step-guards.ts), so that forged or
 * duplicated jobs change nothing. Every state change is appended to the run's history
 * (batch_events). Pause, resume and cancel are in batch-control.ts; recovery of work that no
 * job will do is in stranded-work.ts.
 */

/** Steps only touch the database: graphile-worker's default attempts and backoff suit them. */
export const STEP_MAX_ATTEMPTS = 25;

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

/** A new run would find no row to work through. */
export class NothingToProcessError extends CommandError {
  override name = "NothingToProcessError";
}

/**
 * Starts the run named `name`, or returns it unchanged if it exists. Refused while another run
 * is active (pending, running, paused or cancelling): a row belongs to at most one active run.
 * A new run is refused too when no row is pending or retryable: it would end at once and keep
 * its name, which the same name could then never start again once rows come.
 */
export async function startRun(
  db: WithClient,
  name: string,
  settings: RunSettings,
  actor: string,
): Promise<{ run: Run; created: boolean }> {
  if (isIdReference(name)) {
    throw new UsageError(`a batch name cannot be "#" and digits (${JSON.stringify(name)}): #N names run N`);
  }
  const start = () =>
    db((client) =>
      inTransaction(client, async () => {
        const started = await insertRun(client, name, settings, actor);
        if (started.created && !(await hasRowsToProcess(client, settings.maxAttempts))) {
          throw new NothingToProcessError("nothing to process: no pending or retryable rows");
        }
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
    await assertFinishable(client, run, round);
    if (run.status === "cancelling") {
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

/** A cancelling run becomes cancelled once every one of its chunks has ended. */
export async function settleCancellation(client: PoolClient, run: Run, actor: string): Promise<boolean> {
  if (run.status !== "cancelling" || (await countOpenChunks(client, run.id)) > 0) return false;
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

/**
 * Puts the chunk's job back in the queue, fresh, for another worker to take at once; unless
 * another job has ended the chunk meanwhile.
 */
async function handBackChunk(db: WithClient, ref: ChunkRef, job: ChunkJob, actor: string): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      await lockRun(client, ref.runId);
      const status = await findChunkStatus(client, ref.runId, ref.round, ref.chunkNo);
      if (!status || !OPEN_CHUNK_STATUSES.has(status)) return;
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

/** The graphile-worker job carrying a chunk, as far as the workflow needs it. */
export interface ChunkJob {
  key: string;
  attempt: number;
  maxAttempts: number;
}

/**
 * The chunk activity. A chunk that throws is retried by graphile-worker with its backoff; on
 * its last attempt the failure is recorded so that the round still ends (and the run fails). A
 * chunk of a paused run waits for the resume; one of a cancelling run ends cancelled. A job the
 * run would not run (src/chunks/chunk-start.ts) changes nothing and fails for good.
 */
export async function runChunk(deps: ChunkDeps, ref: ChunkRef, job: ChunkJob) {
  let outcome: Awaited<ReturnType<typeof processChunk>>;
  try {
    outcome = await processChunk(deps, ref);
  } catch (error) {
    const refused = error instanceof ForgedJobError || error instanceof RunMissingError;
    if (!refused && job.attempt >= job.maxAttempts) {
      const message = error instanceof Error ? error.message : String(error);
      await closeChunk(deps.db, ref, { status: "failed", error: message }, deps.worker);
    }
    throw error;
  }
  if (outcome.kind === "finished") await closeChunk(deps.db, ref, { status: "done" }, deps.worker);
  else if (outcome.kind === "handed-back") await handBackChunk(deps.db, ref, job, deps.worker);
  else if (outcome.kind === "stopped" && outcome.runStatus === "cancelling") {
    await closeChunk(deps.db, ref, { status: "cancelled" }, deps.worker);
  }
  return outcome;
}
