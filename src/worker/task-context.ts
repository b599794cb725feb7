import { setMaxListeners } from "node:events";
import type { JobHelpers } from "graphile-worker";
import { SlicePacer } from "../chunks/slice-pause";
import type { SettledSlices } from "../chunks/slice-sizer";
import type { ChunkDeps, ChunkObserver } from "../chunks/work-through-chunk";
import { type Config, getConfig } from "../config/config";
import { getCatalog, getLogger } from "../config/context";
import { reconnecting } from "../db/connection-loss";
import type { WithClient } from "../db/pool";
import { ThrottleGate } from "../health/gate";
import { HealthWatch } from "../health/health-watch";
import { RateLimiters, type RateLimitObserver } from "../processing/rate-limit";
import { drainingSignal } from "./shutdown";

let observer: (ChunkObserver & RateLimitObserver) | undefined;
/** How this process's chunks' slices settled, by job: its next chunks start there. */
const settledSlices = new Map<string, SettledSlices>();
/** The process's rests after slices: its chunks rest in turn (SLICE_PAUSE_RATIO). */
const slicePacer = new SlicePacer();

/** The process's one throttle gate, over its one health watch: every chunk shares its readings. */
let throttleGate: ThrottleGate | undefined;

function processThrottleGate(config: Config): ThrottleGate | undefined {
  if (!config.throttle.enabled || throttleGate) return throttleGate;
  const { healthCheckIntervalMs: intervalMs, limits: envLimits, replicaDatabaseUrl: replicaUrl } = config.throttle;
  const watch = new HealthWatch({ intervalMs, envLimits, replicaUrl, logger: getLogger() });
  throttleGate = new ThrottleGate(watch, intervalMs);
  return throttleGate;
}

/**
 * Closes the throttle gate once the job pool is released: its standby session would keep a
 * process whose work is done (`--once`) from exiting. A pool started after makes a new one.
 */
export async function releaseThrottleGate(): Promise<void> {
  const gate = throttleGate;
  throttleGate = undefined;
  await gate?.close();
}

let rateLimiters: RateLimiters | undefined;

/**
 * Takes this process's rate-limit tokens through `db` from now on: a session of the process's
 * own (src/worker/liveness.ts), not the job pool, whose clients its chunks' slices hold.
 */
export function limitRatesThrough(db: WithClient, config: Config = getConfig()): void {
  rateLimiters = new RateLimiters({
    db,
    logger: getLogger(),
    override: { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst },
    observer: {
      tokensGranted: (job, tokens) => observer?.tokensGranted(job, tokens),
      tokensWaited: (job, seconds) => observer?.tokensWaited(job, seconds),
      waitedWithRowsLocked: (job) => observer?.waitedWithRowsLocked(job),
    },
  });
}

/** Sets what this process's chunks and rate limiters report to (its metrics). */
export function observeChunks(chunkObserver: ChunkObserver & RateLimitObserver): void {
  observer = chunkObserver;
}

/**
 * The job's database access, riding out a restart or failover of the database: a transaction cut
 * by a lost connection is run again once the database answers (every transaction of the
 * workflow and its activities finds its work done if it had committed), for up to
 * RECONNECT_TIMEOUT_S, or until the shutdown grace runs out.
 */
export function taskDb(helpers: JobHelpers, config: Config = getConfig()): WithClient {
  const logger = getLogger();
  return reconnecting(helpers.withPgClient, {
    timeoutMs: config.reconnectTimeoutMs,
    signal: helpers.abortSignal,
    onLost: (error, attempt) =>
      logger[attempt === 1 ? "warn" : "debug"](
        { err: error, queueJob: helpers.job.id, attempt },
        "database connection lost; trying again once it answers",
      ),
  });
}

/** What the chunk activity needs, from graphile-worker's helpers and the process's configuration. */
export function chunkDeps(helpers: JobHelpers, config: Config = getConfig()): ChunkDeps {
  const abort = helpers.abortSignal ?? new AbortController().signal;
  // every running chunk's slices listen on this one signal, with those whose records ran past
  // their commit (up to one a record in flight): as many as the jobs' concurrency, known per job
  setMaxListeners(0, abort);
  return {
    db: taskDb(helpers, config),
    logger: getLogger(),
    jobs: getCatalog(),
    faults: {
      delayMs: config.processDelayMs,
      delaySpread: config.processDelaySpread,
      failRate: config.failRate,
      failFirstAttempts: config.failFirstAttempts,
    },
    worker: config.podName,
    splitWhenIdle: true,
    rowConcurrency: config.rowConcurrency,
    rowTimeoutMs: config.rowTimeoutMs,
    maxLockHoldMs: config.maxLockHoldMs,
    slicePauseRatio: config.slicePauseRatio,
    statementTimeoutMs: config.claimTimeoutMs,
    draining: drainingSignal,
    abort,
    settledSlices,
    slicePacer,
    observer,
    rateLimiters,
    throttle: processThrottleGate(config),
  };
}
