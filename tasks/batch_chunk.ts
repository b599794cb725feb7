import type { Task } from "graphile-worker";
import { ChunkPayload } from "../src/runs/payloads";
import { chunkDeps } from "../src/worker/task-context";
import { runChunk } from "../workflows/batch-run";

/** Workflow activity: process one chunk of a run's round. */
const task: Task = async (payload, helpers) => {
  const { run, round, chunk } = ChunkPayload.parse(payload);
  const { job } = helpers;
  const outcome = await runChunk(
    chunkDeps(helpers),
    { runId: run, round, chunkNo: chunk },
    { number: job.attempts, max: job.max_attempts },
  );
  if (outcome.kind === "handed-back") {
    // A fresh job under the same key replaces this one, so the rest of the chunk is picked
    // up at once by another worker, without counting against this job's attempts.
    await helpers.addJob(job.task_identifier, payload, {
      jobKey: job.key ?? undefined,
      maxAttempts: job.max_attempts,
    });
  }
};

export default task;
