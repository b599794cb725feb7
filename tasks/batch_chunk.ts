import { queueJobKeys } from "../src/runs/job-queue";
import { ChunkPayload } from "../src/runs/payloads";
import { batchTask } from "../src/worker/batch-task";
import { chunkDeps } from "../src/worker/task-context";
import { runChunkQueueJob } from "../workflows/chunk-activity";

/** Workflow activity: process one chunk of a run's round. */
export default batchTask(ChunkPayload, async ({ run, round, chunk }, helpers) => {
  const { job } = helpers;
  await runChunkQueueJob(
    chunkDeps(helpers),
    { runId: run, round, chunkNo: chunk },
    { key: queueJobKeys.chunk(run, round, chunk), attempt: job.attempts, maxAttempts: job.max_attempts },
  );
});
