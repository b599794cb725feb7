import type { PoolClient } from "pg";
import { HELD_LOCK_KEYS } from "../db/advisory-locks";
import { inTransaction, type WithClient } from "../db/pool";
import { KEY_TYPES } from "../db/types";
import type { JobCatalog } from "../jobs/catalog";
import { findSplitKey, hasWaitingChunk, splitChunk } from "../runs/chunks";
import { appendEvent } from "../runs/events";
import { addQueueJob, chunkQueueJobKeySql, queueJobKeys, TASKS } from "../runs/job-queue";
import type { ChunkRange } from "../runs/model";
import { lockRun } from "../runs/runs";

/** No chunk is split into halves of fewer rows: a new chunk costs a job and two transactions. */
export const MIN_SPLIT_ROWS = 200;

/** Who the new chunks are for, as the run's history says: a chunk job's slot that has finished, or a worker starting. */
export type SplitOccasion = "an idle slot" | "a worker starting";

export interface SplitRequest {
  jobs: JobCatalog;
  runId: number;
  round: number;
  /** The worker the new chunks are for, named in the run's history. */
  actor: string;
  occasion: SplitOccasion;
  /** How many new chunks to make at most: one for each idle slot. */
  slots: number;
  /** The rows of one of the caller's slices, when it knows: a half of fewer is done as fast by the chunk itself. */
  sliceRows?: number;
}

/**
 * A running chunk a worker runs now: its job is taken by a job pool whose liveness session is
 * alive (src/worker/liveness.ts). A dead worker's chunk is not split: the workers' recovery
 * releases it whole, and it waits for a slot.
 */
const RUN_BY_LIVE_WORKER = `EXISTS (
  SELECT 1 FROM graphile_worker.jobs j JOIN worker_sessions s ON s.pool_id = j.locked_by
   WHERE j.key = ${chunkQueueJobKeySql("batch_chunks")} AND j.locked_at IS NOT NULL
     AND s.lock_key IN (${HELD_LOCK_KEYS}))`;

/**
 * Work stealing, for a worker slot with nothing to do while chunks run. At a round's end, a chunk
 * job that has finished its own chunk while no chunk of the round waits for a worker splits the
 * running chunk with the most rows left: the upper half of its claimable rows becomes a new chunk
 * of the round, with a job of its own, which the finishing job's worker slot takes next (with
 * `--once` too). Without it, the last wave of a run leaves slots idle (10 chunks on 4 slots: the
 * third wave runs on two) until its slowest chunk ends. A worker starting (a pod KEDA has just
 * started) does the same for each of its slots (splitForStartingWorker). The running chunk learns
 * its new end from its next slice (src/chunks/slice.ts), and stops there; rows of the given half
 * its slice in flight holds are skipped by the new chunk and written by the old one. A new chunk
 * is an ordinary chunk: its ending counts toward the fan-in. Returns the new chunks' numbers.
 */
export function splitLargestRunning(client: PoolClient, request: SplitRequest): Promise<number[]> {
  const { runId, round } = request;
  const minRows = Math.max(request.sliceRows ?? 0, MIN_SPLIT_ROWS);
  return inTransaction(client, async () => {
    // first without the run's lock: a chunk waiting is work for an idle slot already
    if (await hasWaitingChunk(client, runId, round)) return [];
    const run = await lockRun(client, runId);
    if (run.status !== "running" || run.round !== round || (await hasWaitingChunk(client, runId, round))) {
      return [];
    }
    const job = request.jobs.get(run.job);
    const made: number[] = [];
    // each time the largest: a chunk just split may still be, with its half kept
    while (made.length < request.slots) {
      const { rows } = await client.query<ChunkRange & { chunkNo: number }>({
        text: `SELECT chunk_no AS "chunkNo", first_id AS "firstId", last_id AS "lastId", planned_at AS "plannedAt"
                 FROM batch_chunks
                WHERE run_id = $1 AND round = $2 AND status = 'running' AND ${RUN_BY_LIVE_WORKER}
                ORDER BY planned_rows - rows_completed - rows_failed DESC LIMIT 1`,
        values: [runId, round],
        types: KEY_TYPES,
      });
      const victim = rows[0];
      if (!victim) break;
      const split = await findSplitKey(client, job, victim, run.settings.maxAttempts, minRows, {
        runId,
        subset: run.settings.subset,
      });
      if (!split) break;
      const ref = { runId, round, chunkNo: victim.chunkNo };
      const chunkNo = await splitChunk(client, ref, split);
      const payload = { run: runId, round, chunk: chunkNo };
      await addQueueJob(
        client,
        TASKS.chunk,
        payload,
        queueJobKeys.chunk(runId, round, chunkNo),
        run.settings.chunkMaxAttempts,
      );
      await appendEvent(client, runId, "chunk-split", {
        step: "chunk",
        actor: request.actor,
        round,
        chunkNo: victim.chunkNo,
        counts: { kept: split.kept, given: split.given },
        detail: `ids ${split.key}-${victim.lastId} to chunk ${chunkNo}, for ${request.occasion}`,
      });
      made.push(chunkNo);
    }
    return made;
  });
}

/**
 * A worker starting while runs have chunks running and none waiting (the tail of a run, when
 * KEDA starts a pod for the backlog) would find nothing to take: a `--once` pod would exit at
 * once, a long-running one idle until a chunk ends. Before its slots look for jobs, it splits
 * running chunks for them instead: up to `slots` new chunks, each from the largest chunk running
 * then, run by run (the one with the most rows left in a running chunk first). Returns how many.
 */
export async function splitForStartingWorker(
  db: WithClient,
  request: { jobs: JobCatalog; actor: string; slots: number },
): Promise<number> {
  const { rows: rounds } = await db((client) =>
    client.query<{ runId: number; round: number }>(
      `SELECT r.id AS "runId", r.round FROM batch_jobs r
         JOIN batch_chunks c ON c.run_id = r.id AND c.round = r.round AND c.status = 'running'
        WHERE r.kind = 'process' AND r.status = 'running'
        GROUP BY r.id, r.round
        ORDER BY max(c.planned_rows - c.rows_completed - c.rows_failed) DESC`,
    ),
  );
  let made = 0;
  for (const { runId, round } of rounds) {
    if (made >= request.slots) break;
    const slots = request.slots - made;
    const split = {
      jobs: request.jobs,
      runId,
      round,
      actor: request.actor,
      occasion: "a worker starting" as const,
      slots,
    };
    made += (await db((client) => splitLargestRunning(client, split))).length;
  }
  return made;
}
