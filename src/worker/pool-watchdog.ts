import type { WorkerEvents, WorkerPool } from "graphile-worker";
import pg from "pg";
import { EXIT_TEMPFAIL } from "../base/exit-status";
import type { Logger } from "../base/logger";
import { retryWhileDisconnected } from "../db/connection-loss";
import { releaseQueueJobsOf } from "./dead-workers";

/**
 * Exit status of a worker whose job pool stopped by itself: a temporary failure (EX_TEMPFAIL),
 * for its supervisor (Kubernetes, compose, systemd) to start it again.
 */
export const EXIT_POOL_LOST = EXIT_TEMPFAIL;

/**
 * Keeps a worker process from staying alive with no job pool.
 *
 * graphile-worker 0.17 stops a job pool for good when it cannot record a job's completion or
 * failure ("queue is in an inconsistent state"), as happens when the database restarts while a
 * job ends, and a `--once` pool stops when it cannot fetch a job. The pool's shutdown can then
 * hang, and the process would stay up, taking no job, with its jobs locked for four hours.
 *
 * When a pool stops without being asked to (a signal, `runner.stop()`, the end of `--once`),
 * the watchdog marks the process unhealthy (its /healthz fails), waits for the database to
 * answer, releases the jobs that pool still holds, and ends the process with EXIT_POOL_LOST.
 */
export class PoolWatchdog {
  private pools = 0;
  private stopRequested = false;
  private lostPool = false;

  constructor(
    private readonly options: {
      url: string;
      actor: string;
      reconnectTimeoutMs: number;
      logger: Logger;
      /** Ends the process with the status given: the entry point's to do. */
      exit: (status: number) => void;
    },
  ) {}

  /** Whether the process has a job pool taking jobs: what /healthz reports. */
  get healthy(): boolean {
    return this.pools > 0 && !this.lostPool;
  }

  /** Whether a job pool stopped without being asked to (the process is about to exit). */
  get lost(): boolean {
    return this.lostPool;
  }

  watch(events: WorkerEvents): void {
    events.on("gracefulShutdown", () => {
      this.stopRequested = true;
    });
    events.on("stop", () => {
      this.stopRequested = true;
    });
    events.on("pool:create", ({ workerPool }) => {
      this.pools++;
      workerPool.promise.then(
        () => {
          this.pools--;
          // a continuous pool only ends when asked to; a `--once` pool ends when no job is due
          if (!this.stopRequested && workerPool.id.startsWith("pool-")) void this.poolLost(workerPool, "it stopped");
        },
        (error: unknown) => {
          this.pools--;
          void this.poolLost(workerPool, String(error));
        },
      );
    });
    // the pool's own shutdown may never end after this: act now
    events.on("pool:fatalError", ({ workerPool, error, action }) =>
      this.poolLost(workerPool, `could not ${action}: ${String(error)}`),
    );
  }

  private async poolLost(workerPool: WorkerPool, reason: string): Promise<void> {
    if (this.lostPool) return;
    this.lostPool = true;
    const { logger } = this.options;
    logger.error(
      { pool: workerPool.id, reason },
      `the job pool stopped (${reason}); releasing its jobs, then exiting with status ${EXIT_POOL_LOST} for a restart`,
    );
    try {
      const released = await retryWhileDisconnected(() => this.releaseQueueJobs(workerPool.id), {
        timeoutMs: this.options.reconnectTimeoutMs,
      });
      logger.warn({ pool: workerPool.id, queueJobs: released }, "released the jobs of the stopped job pool");
    } catch (error) {
      logger.error({ err: error }, "could not release the stopped job pool's jobs; other workers will recover them");
    }
    this.options.exit(EXIT_POOL_LOST);
  }

  private async releaseQueueJobs(poolId: string): Promise<number> {
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: 5000 });
    client.on("error", () => undefined);
    try {
      await client.connect();
      await client.query("BEGIN");
      const released = await releaseQueueJobsOf(client, [poolId], this.options.actor, "lost its job pool");
      await client.query("COMMIT");
      return released;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
