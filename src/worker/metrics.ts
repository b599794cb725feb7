import http from "node:http";
import type { WorkerEvents } from "graphile-worker";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "../base/logger";
import type { ChunkObserver, SliceReport } from "../chunks/work-through-chunk";
import { ConfigError } from "../config/config";
import type { ThrottleSignal } from "../runs/throttle-state";

/**
 * The worker's Prometheus metrics, served on METRICS_PORT at /metrics (and /healthz for the
 * liveness probe): rows and chunks processed, claim and write latencies, rate-limit tokens, the
 * time chunks waited for them and records that waited with rows locked, rows held by
 * other sessions that chunks wait on, graphile-worker job events, and the process's own metrics.
 */
export class WorkerMetrics implements ChunkObserver {
  readonly registry = new Registry();
  private readonly rows = new Counter({
    name: "batch_rows_total",
    help: "Rows processed, by job and outcome: completed, failed (for good) or retryable",
    labelNames: ["job", "outcome"],
    registers: [this.registry],
  });
  private readonly slices = new Counter({
    name: "batch_slices_total",
    help: "Slices committed, by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly claimSeconds = new Histogram({
    name: "batch_claim_seconds",
    help: "Time to claim a slice's rows (SELECT ... FOR UPDATE SKIP LOCKED)",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly writeSeconds = new Histogram({
    name: "batch_write_seconds",
    help: "Time to write a slice's outcomes and counters, commit aside",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly chunkSeconds = new Histogram({
    name: "batch_chunk_duration_seconds",
    help: "Time a chunk job took, by job and how it ended",
    labelNames: ["job", "outcome"],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  private readonly chunksRunning = new Gauge({
    name: "batch_chunks_running",
    help: "Chunk jobs running in this process",
    registers: [this.registry],
  });
  private readonly rateLimitWait = new Counter({
    name: "batch_rate_limit_wait_seconds_total",
    help: "Time chunks waited for tokens of their job's rate limit before claiming, summed over chunks, by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly rateLimitLockedWaits = new Counter({
    name: "batch_rate_limit_locked_waits_total",
    help: "Records that waited for a token of their job's rate limit with their slice's rows locked, by job (slices claim only rows they hold tokens for: 0)",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly rateLimitTokens = new Counter({
    name: "batch_rate_limit_tokens_total",
    help: "Tokens of its job's rate limit this process was granted (a record each), by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly throttledSeconds = new Counter({
    name: "batch_throttled_seconds_total",
    help: "Seconds chunks waited without claiming, by job and the health signal over its limit (reason)",
    labelNames: ["job", "reason"],
    registers: [this.registry],
  });
  private readonly throttled = new Gauge({
    name: "batch_throttled_chunks",
    help: "Chunks of this process waiting on the database's health now, by job and reason",
    labelNames: ["job", "reason"],
    registers: [this.registry],
  });
  private readonly pausedSeconds = new Counter({
    name: "batch_slice_pause_seconds_total",
    help: "Seconds chunks paused after their slices (SLICE_PAUSE_RATIO), by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly pauses = new Counter({
    name: "batch_slice_pauses_total",
    help: "Pauses chunks made after their slices (SLICE_PAUSE_RATIO), by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly rowsHeld = new Gauge({
    name: "batch_rows_held_elsewhere",
    help: "Rows that another session keeps locked, which this process's chunks wait on now (an application's transaction left idle, say), by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly heldRowsGiveUps = new Counter({
    name: "batch_held_rows_give_ups_total",
    help: "Chunk attempts ended over rows another session kept locked past the chunk's wait (graphile-worker retries them), by job",
    labelNames: ["job"],
    registers: [this.registry],
  });
  private readonly jobs = new Counter({
    name: "graphile_worker_jobs_total",
    help: "graphile-worker job events: start, success, error (will retry), failed (for good)",
    labelNames: ["task", "event"],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  sliceCommitted(slice: SliceReport): void {
    const { job } = slice;
    this.slices.inc({ job });
    this.rows.inc({ job, outcome: "completed" }, slice.completed);
    this.rows.inc({ job, outcome: "failed" }, slice.failed);
    this.rows.inc({ job, outcome: "retryable" }, slice.retryable);
    this.claimSeconds.observe(slice.claimSeconds);
    this.writeSeconds.observe(slice.writeSeconds);
  }

  tokensGranted(job: string, tokens: number): void {
    this.rateLimitTokens.inc({ job }, tokens);
  }

  tokensWaited(job: string, seconds: number): void {
    this.rateLimitWait.inc({ job }, seconds);
  }

  waitedWithRowsLocked(job: string): void {
    this.rateLimitLockedWaits.inc({ job });
  }

  rowsHeldElsewhere(job: string, change: number): void {
    this.rowsHeld.inc({ job }, change);
  }

  heldRowsGaveUp(job: string): void {
    this.heldRowsGiveUps.inc({ job });
  }

  chunkEnded(job: string, outcome: string, seconds: number): void {
    this.chunkSeconds.observe({ job, outcome }, seconds);
  }

  slicePaused(job: string, seconds: number): void {
    this.pauses.inc({ job });
    this.pausedSeconds.inc({ job }, seconds);
  }

  throttleBegan(job: string, reason: ThrottleSignal): void {
    this.throttled.inc({ job, reason });
  }

  throttleEnded(job: string, reason: ThrottleSignal): void {
    this.throttled.dec({ job, reason });
  }

  throttleWaited(job: string, reason: ThrottleSignal, seconds: number): void {
    this.throttledSeconds.inc({ job, reason }, seconds);
  }

  /** Counts graphile-worker's job events, and the chunk jobs running. */
  watch(events: WorkerEvents): void {
    const count = (event: string) => (payload: { job: { task_identifier: string } }) => {
      this.jobs.inc({ task: payload.job.task_identifier, event });
    };
    events.on("job:start", count("start"));
    events.on("job:success", count("success"));
    events.on("job:error", count("error"));
    events.on("job:failed", count("failed"));
    events.on("job:start", ({ job }) => job.task_identifier === "batch_chunk" && this.chunksRunning.inc());
    events.on("job:complete", ({ job }) => job.task_identifier === "batch_chunk" && this.chunksRunning.dec());
  }

  /**
   * Serves /metrics and /healthz (200 while `healthy()`, else 503) from now on. A port that
   * cannot be listened on is a configuration error where it was `required` (set in the
   * environment); else the worker goes on without them, saying so in one warning.
   */
  async serve(
    port: number,
    options: { logger: Logger; healthy: () => boolean; required: boolean },
  ): Promise<http.Server | undefined> {
    const { logger, healthy, required } = options;
    const server = http.createServer((request, response) => {
      if (request.url === "/healthz") {
        const ok = healthy();
        response
          .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
          .end(ok ? "ok\n" : "job pool not running\n");
      } else if (request.url === "/metrics") {
        this.registry.metrics().then(
          (text) => response.writeHead(200, { "content-type": this.registry.contentType }).end(text),
          (error: Error) => response.writeHead(500).end(error.message),
        );
      } else {
        response.writeHead(404).end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once("error", (error) => {
        const problem = `METRICS_PORT ${port} cannot be served (${error.message})`;
        if (required) {
          reject(new ConfigError(`${problem}: give each worker on this host its own METRICS_PORT, or 0 for none`));
          return;
        }
        logger.warn(
          { port },
          `${problem}: this worker serves no /metrics or /healthz; set METRICS_PORT to a free port for them, or to 0 for none`,
        );
        resolve(undefined);
      });
      server.listen(port, () => {
        server.unref();
        logger.info({ port: (server.address() as { port: number }).port }, "serving metrics on /metrics");
        resolve(server);
      });
    });
  }
}
