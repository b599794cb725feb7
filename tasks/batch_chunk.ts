import type { Task } from "graphile-worker";
import { ChunkPayload } from "../src/runs/payloads";
import { jobKeys } from "../src/runs/store";
import { chunkDeps } from "../src/worker/task-context";
import { runChunk } from "../workflows/batch-run";

/** Workflow activity: process one chunk of a run's round. */
const task: Task = async (payload, helpers) => {
  const { run, round, chunk } = ChunkPayload.parse(payload);
  const { job } = helpers;
  await runChunk(
    chunkDeps(helpers),
    { runId: run, round, chunkNo: chunk },
    { key: jobKeys.chunk(run, round, chunk), attempt: job.attempts, maxAttempts: job.max_attempts },
  );
};

export default task;
