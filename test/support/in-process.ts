import type pg from "pg";
import type { ChunkDeps } from "../../src/chunks/work-through-chunk";
import { getCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
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
