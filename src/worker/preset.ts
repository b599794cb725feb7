import { EventEmitter } from "node:events";
import { type WorkerEvents, WorkerPreset } from "graphile-worker";
import type { Logger } from "../base/logger";
import type { Config } from "../config/config";
import { toGraphileLogger } from "../db/graphile-logger";
import type { WithClient } from "../db/pool";
import { withWorkerSessionName } from "../health/signals";
import { type Recover, WorkerLiveness } from "./liveness";
import { WorkerMetrics } from "./metrics";
import { PoolWatchdog } from "./pool-watchdog";
import { drainOnShutdown } from "./shutdown";
import { limitRatesThrough, observeChunks, releaseThrottleGate } from "./task-context";

/** What a worker process does to take up work others left (workflows/recovery.ts). */
export interface WorkerRecovery {
  /** Run by the liveness before a job pool takes its first job, and every few seconds after. */
  recover: Recover;
  /** Run once per job pool, after its first recovery and before any of its `slots` takes a job. */
  start: (db: WithClient, slots: number) => Promise<void>;
}

/** Time kept after the abort signal for rolling back, handing chunks back and exiting. */
const SHUTDOWN_MARGIN_MS = 3000;

/**
 * Metrics of this process's chunks and jobs, and its health, served from before its job pool
 * starts (a port asked for that is taken ends the process before it takes a job) until the
 * pool is released; a lost pool's process keeps answering, unhealthy, until it exits.
 */
async function serveMetrics(events: WorkerEvents, config: Config, logger: Logger, watchdog: PoolWatchdog) {
  const metrics = new WorkerMetrics();
  metrics.watch(events);
  observeChunks(metrics);
  const server = await metrics.serve(config.metricsPort, {
    logger,
    healthy: () => watchdog.healthy,
    required: config.metricsPortSet,
  });
  events.on("pool:release", () => !watchdog.lost && server?.close());
}

/** What the entry point that starts the worker hands in. */
export interface WorkerEntry {
  /** The recovery of dead workers' and stranded work (workflows/recovery.ts). */
  recovery: WorkerRecovery;
  /** Ends the process with the status given, when a job pool is lost. */
  exit: (status: number) => void;
  /** The compiled tasks, for graphile-worker's CLI; an in-process runner hands graphile-worker its task list instead. */
  taskDirectory?: string;
}

/**
 * The graphile-worker configuration used both by `graphile-worker` (through graphile.config.js)
 * and by the in-process runner of `npm start`. Rejects with a ConfigError when METRICS_PORT was
 * set and cannot be served.
 */
export async function workerPreset(
  config: Config,
  logger: Logger,
  connectionString: string,
  { recovery, exit, taskDirectory }: WorkerEntry,
): Promise<GraphileConfig.Preset> {
  const events: WorkerEvents = new EventEmitter();
  drainOnShutdown(events);
  // A promise a job's function started and never awaited may reject after its record ended:
  // Node would end the process, and with it every chunk it runs, for one row's stray promise.
  process.on("unhandledRejection", (reason) =>
    logger.error({ err: reason }, "a promise rejected with no handler (a job's function left it): the worker goes on"),
  );
  const liveness = new WorkerLiveness({
    url: connectionString,
    pod: config.podName,
    deadAfterMs: config.workerDeadAfterMs,
    logger,
    recover: recovery.recover,
  });
  limitRatesThrough(liveness.onSession, config);
  // per job pool: each of its slots waits for the one start-up, so a `--once` pool finds its work
  const starts = new Map<string, Promise<void>>();
  const startPool = (poolId: string, db: WithClient): Promise<void> => {
    let started = starts.get(poolId);
    if (!started) {
      started = recovery
        .start(db, config.workers)
        .catch((error: unknown) =>
          logger.warn({ err: error }, "worker start-up failed; its slots take jobs as they come"),
        );
      starts.set(poolId, started);
    }
    return started;
  };
  events.on("pool:release", () => void liveness.close());
  events.on("pool:release", () => void releaseThrottleGate());
  const watchdog = new PoolWatchdog({
    url: connectionString,
    actor: config.podName,
    reconnectTimeoutMs: config.reconnectTimeoutMs,
    logger,
    exit,
  });
  watchdog.watch(events);
  if (config.metricsPort > 0) await serveMetrics(events, config, logger, watchdog);
  const livenessPlugin: GraphileConfig.Plugin = {
    name: "BatchWorkerLiveness",
    version: "1.0.0",
    description:
      "registers each job pool as alive before it takes a job (src/worker/liveness.ts), then makes work for its slots",
    worker: {
      hooks: {
        startWorker: async (_info, event) => {
          await liveness.register(event.worker.workerPool.id);
          await startPool(event.worker.workerPool.id, event.withPgClient);
        },
      },
      middleware: {
        // graphile-worker ends a process stopped by a signal as soon as its pools are down:
        // deregister before that, not on pool:release, which it does not wait for
        poolGracefulShutdown: async (next) => {
          try {
            return await next();
          } finally {
            await liveness.close();
          }
        },
      },
    },
  };
  return {
    extends: [WorkerPreset],
    plugins: [livenessPlugin],
    worker: {
      // named, so that the lock-wait signal of every pod's workers knows their sessions (src/health/signals.ts)
      connectionString: withWorkerSessionName(connectionString, config.podName),
      concurrentJobs: config.workers,
      maxPoolSize: config.pools.workerPool,
      taskDirectory,
      fileExtensions: [".js"],
      crontabFile: "/dev/null", // no cron jobs: an always-empty crontab, read without a "cron is disabled" line
      gracefulShutdownAbortTimeout: Math.max(1000, config.shutdownGraceMs - SHUTDOWN_MARGIN_MS),
      // Batched (even with no delay), job completions and failures are flushed before a
      // graceful shutdown ends; unbatched, graphile-worker 0.17 does not wait for them, and a
      // job finished just before SIGTERM could stay locked.
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      logger: toGraphileLogger(logger),
      events,
    },
  };
}
