import type { PoolClient } from "pg";
import { inTransaction } from "../db/pool";
import { ROW_TYPES } from "../db/types";
import type { JobCatalog } from "../jobs/catalog";
import { findSplitKey, hasWaitingChunk, splitChunk } from "../runs/chunks";
import { appendEvent } from "../runs/events";
import { addJob, chunkJobKeySql, jobKeys, TASKS } from "../runs/job-queue";
import type { ChunkRange } from "../runs/model";
import { lockRun } from "../runs/runs";

/**
 * Work stealing at a round's end. A chunk job that has finished its own chunk while no chunk of
 * the round waits for a worker splits the running chunk with the most rows left: the upper half
 * of its claimable rows becomes a new chunk of the round, with a job of its own, which the
 * finishing job's worker slot takes next (with `--once` too). Without it, the last wave of a run
 * leaves slots idle (10 chunks on 4 slots: the third wave runs on two) until its slowest chunk
 * ends. The running chunk learns its new end from its next slice (src/chunks/slice.ts), and stops
 * there; rows of the given half its slice in flight holds are skipped by the new chunk and
 * written by the old one. The new chunk is an ordinary chunk: its ending counts toward the fan-in.
 */
export function splitLargestRunning(
  client: PoolClient,
  request: { jobs: JobCatalog; runId: number; round: number; minRows: number; actor: string },
): Promise<number | undefined> {
  const { runId, round } = request;
  return inTransaction(client, async () => {
    // first without the run's lock: a chunk waiting is work for an idle slot already
    if (await hasWaitingChunk(client, runId, round)) return undefined;
    const run = await lockRun(client, runId);
    if (run.status !== "running" || run.round !== round || (await hasWaitingChunk(client, runId, round))) {
      return undefined;
    }
    const { rows } = await client.query<ChunkRange & { chunkNo: number }>({
      text: `SELECT chunk_no AS "chunkNo", first_id AS "firstId", last_id AS "lastId", planned_at AS "plannedAt"
               FROM batch_chunks
              WHERE run_id = $1 AND round = $2 AND status = 'running'
                -- a worker runs it now: its job is taken
                AND EXISTS (SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${chunkJobKeySql("batch_chunks")}
                               AND j.locked_at IS NOT NULL)
              ORDER BY planned_rows - rows_completed - rows_failed DESC LIMIT 1`,
      values: [runId, round],
      types: ROW_TYPES,
    });
    const victim = rows[0];
    if (!victim) return undefined;
    const job = request.jobs.get(run.job);
    const split = await findSplitKey(
      client,
      job,
      victim,
      victim.firstId - 1,
      run.settings.maxAttempts,
      request.minRows,
    );
    if (!split) return undefined;
    const ref = { runId, round, chunkNo: victim.chunkNo };
    const chunkNo = await splitChunk(client, ref, split);
    const payload = { run: runId, round, chunk: chunkNo };
    await addJob(client, TASKS.chunk, payload, jobKeys.chunk(runId, round, chunkNo), run.settings.chunkMaxAttempts);
    await appendEvent(client, runId, "chunk-split", {
      step: "chunk",
      actor: request.actor,
      round,
      chunkNo: victim.chunkNo,
      counts: { kept: split.kept, given: split.given },
      detail: `ids ${split.key}-${victim.lastId} to chunk ${chunkNo}`,
    });
    return chunkNo;
  });
}
