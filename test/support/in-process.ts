import type pg from "pg";
import type { ChunkDeps } from "../../src/chunks/work-through-chunk";
import { getCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { finishRound } from "../../workflows/finish-round";
import { quietLogger } from "./database";

/** What runChunkQueueJob needs to process chunks in the test's own process, on the test's pool. */
export function inProcessDeps(pool: pg.Pool, failRate = 0, splitWhenIdle = false): ChunkDeps {
  return {
    db: withPool(pool),
    logger: quietLogger,
    jobs: getCatalog(),
    faults: { delayMs: 0, failRate, failFirstAttempts: undefined },
    worker: "in-process",
    // the tests that run chunks by hand run the round's planned chunks, no others
    splitWhenIdle,
    rowConcurrency: 8,
    rowTimeoutMs: 5000,
    // full speed, as every worker of the tests (global-setup.ts)
    slicePauseRatio: 0,
    statementTimeoutMs: 10_000,
    draining: new AbortController().signal,
    abort: new AbortController().signal,
  };
}

/** Runs each chunk of the run's round once in this process (on its first attempt of 3), then the round's finish step. */
export async function runRoundInProcess(pool: pg.Pool, runId: number, round = 0): Promise<void> {
  const deps = inProcessDeps(pool);
  const { rows: chunks } = await pool.query<{ chunk_no: number }>(
    "SELECT chunk_no FROM batch_chunks WHERE run_id = $1 AND round = $2 ORDER BY chunk_no",
    [runId, round],
  );
  for (const { chunk_no: chunkNo } of chunks) {
    await runChunkQueueJob(deps, { runId, round, chunkNo }, { key: `k${chunkNo}`, attempt: 1, maxAttempts: 3 });
  }
  await finishRound(withPool(pool), runId, round, "test");
}
