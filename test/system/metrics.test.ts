import net from "node:net";
import pino from "pino";
import { freePort } from "../../src/base/free-port";
import { ConfigError } from "../../src/config/config";
import { WorkerMetrics } from "../../src/worker/metrics";
import { statusCounts, useTestDatabase } from "../support/database";
import { seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/** The value of one sample of a Prometheus text exposition. */
function sample(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line ? Number(line.split(" ").pop()) : Number.NaN;
}

describe("worker metrics", () => {
  const db = useTestDatabase({ users: 3000 });

  it("are served on METRICS_PORT and agree with the database", async () => {
    const port = await freePort();
    const env = {
      CHUNK_SIZE: "500",
      FAIL_RATE: "0.05",
      MAX_ATTEMPTS: "2",
      RETRY_DELAY_S: "0",
      METRICS_PORT: String(port),
    };
    await seed(["enqueue", "--batch-name", "measured"], { DATABASE_URL: db.url, ...env });
    const worker = startWorker([], { DATABASE_URL: db.url, ...env });
    try {
      await waitFor("the run to complete", async () => (await runByName(db.pool, "measured")).status === "completed");
      expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text()).toBe("ok\n");
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

      const counts = await statusCounts(db.pool);
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE attempts = 2 AND batch_status = 'completed')::int AS retried,
                (SELECT count(*)::int FROM batch_chunks) AS chunks FROM users`,
      );
      // every failing row failed its first attempt (retryable) and its second (for good)
      expect(sample(text, "batch_rows_total", 'job="users",outcome="completed"')).toBe(counts.completed);
      expect(sample(text, "batch_rows_total", 'job="users",outcome="failed"')).toBe(counts.failed);
      expect(sample(text, "batch_rows_total", 'job="users",outcome="retryable"')).toBe(counts.failed + rows[0].retried);
      expect(sample(text, "graphile_worker_jobs_total", 'task="batch_chunk",event="success"')).toBe(rows[0].chunks);
      expect(sample(text, "graphile_worker_jobs_total", 'task="batch_finish",event="success"')).toBe(2);
      expect(sample(text, "batch_chunk_duration_seconds_count", 'job="users",outcome="finished"')).toBe(rows[0].chunks);
      expect(sample(text, "batch_chunks_running")).toBe(0);
      expect(sample(text, "batch_claim_seconds_count")).toBe(sample(text, "batch_slices_total", 'job="users"'));
      expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
      expect(counts.failed).toBeGreaterThan(0);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });

  it("make a worker whose METRICS_PORT is taken exit 2 with one line, before it takes a job", async () => {
    await seed(["enqueue", "--batch-name", "unserved"], { DATABASE_URL: db.url, CHUNK_SIZE: "500" });
    const taken = await listenOnFreePort();
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const result = await startWorker(["--once"], { DATABASE_URL: db.url, METRICS_PORT: String(port) }).exited;
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split("\n")).toEqual([
        `configuration error: METRICS_PORT ${port} cannot be served (listen EADDRINUSE: address already in use :::${port}): ` +
          "give each worker on this host its own METRICS_PORT, or 0 for none",
      ]);
      const { rows } = await db.pool.query(
        "SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE attempts > 0 OR locked_at IS NOT NULL",
      );
      expect(rows[0].n).toBe(0);
    } finally {
      taken.close();
    }
  });
});

/** A server holding a port, as another worker on the same host does. */
async function listenOnFreePort(): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, resolve));
  return server;
}

describe("the default METRICS_PORT, taken", () => {
  let taken: net.Server;
  beforeAll(async () => {
    taken = await listenOnFreePort();
  });
  afterAll(() => taken.close());

  it("is a warning naming METRICS_PORT: the worker goes on without /metrics and /healthz", async () => {
    const port = (taken.address() as net.AddressInfo).port;
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
    const serving = new WorkerMetrics().serve(port, { logger, healthy: () => true, required: false });
    await expect(serving).resolves.toBeUndefined();
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        level: 40,
        port,
        msg: expect.stringMatching(
          /^METRICS_PORT \d+ cannot be served \(listen EADDRINUSE.*\): this worker serves no \/metrics or \/healthz; set METRICS_PORT to a free port for them, or to 0 for none$/,
        ),
      }),
    ]);
    expect(lines[0]).not.toContain("stack");
  });

  it("is a configuration error where METRICS_PORT was set", async () => {
    const port = (taken.address() as net.AddressInfo).port;
    const logger = pino({ level: "silent" });
    const serving = new WorkerMetrics().serve(port, { logger, healthy: () => true, required: true });
    await expect(serving).rejects.toThrow(ConfigError);
  });
});
