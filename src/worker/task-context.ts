import { setMaxListeners } from "node:events";
import type { JobHelpers } from "graphile-worker";
import { processUser } from "../business-logic";
import type { ChunkDeps, ChunkObserver } from "../chunks/process-chunk";
import { type Config, getConfig } from "../config";
import { getLogger } from "../context";
import { withInjectedFaults } from "../processing/fault-injection";
import { drainingSignal } from "./shutdown";

let observer: ChunkObserver | undefined;

/** Sets what this process's chunks report to (its metrics). */
export function observeChunks(chunkObserver: ChunkObserver): void {
  observer = chunkObserver;
}

/** What the chunk activity needs, from graphile-worker's helpers and the process's configuration. */
export function chunkDeps(helpers: JobHelpers, config: Config = getConfig()): ChunkDeps {
  const abort = helpers.abortSignal ?? new AbortController().signal;
  // every running chunk's slice listens on this one signal
  setMaxListeners(config.workers + 10, abort);
  return {
    db: helpers.withPgClient,
    logger: getLogger(),
    logic: withInjectedFaults(processUser, {
      delayMs: config.processDelayMs,
      failRate: config.failRate,
      failFirstAttempts: config.failFirstAttempts,
    }),
    worker: config.podName,
    rowConcurrency: config.rowConcurrency,
    rowTimeoutMs: config.rowTimeoutMs,
    statementTimeoutMs: config.claimTimeoutMs,
    draining: drainingSignal,
    abort,
    observer,
  };
}
