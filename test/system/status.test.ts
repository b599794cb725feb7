import { useTestDatabase } from "../support/database";
import { STATUS_CLI, seed, start, startWorker, status } from "../support/processes";
import { runByName, waitFor } from "../support/runs";
import { settledTableScans, tableScans } from "../support/table-scans";

const ROWS = 3000;

describe("status", () => {
  const db = useTestDatabase({ users: ROWS, each: true });

  /**
   * The whole seconds left until `due`, as the database's clock reads them now: after status
   * answered, so however long it took to start on a busy machine, no more than its ETA can hold.
   */
  async function secondsUntilDue(due: string): Promise<number> {
    const { rows } = await db.pool.query("SELECT extract(epoch FROM $1::timestamptz - now())::float8 AS left", [due]);
    expect(rows[0].left).toBeGreaterThan(0);
    return Math.floor(rows[0].left);
  }

  it("--json reports what the database holds: rows, chunks, workers and errors", async () => {
    // round 0 runs; the retry round waits a minute, so the run stays open with rows retrying
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.1", RETRY_DELAY_S: "60", POD_NAME: "pod-x" };
    await seed(["enqueue", "--batch-name", "reported"], { DATABASE_URL: db.url, ...env });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);

    const result = await status(["reported", "--json"], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE batch_status = 'completed')::int AS completed,
              count(*) FILTER (WHERE batch_status = 'failed')::int AS failed
         FROM users`,
    );
    const { completed, failed } = rows[0];
    expect(failed).toBeGreaterThan(0);
    const run = await runByName(db.pool, "reported");
    expect(report).toMatchObject({
      id: run.id,
      name: "reported",
      status: "running",
      round: 1,
      total: ROWS,
      completed,
      failed: 0,
      retrying: failed,
      pending: 0,
      percentDone: Math.round((1000 * completed) / ROWS) / 10,
      chunks: { total: 1, waiting: 1, running: 0, done: 0, retrying: 0, failed: 0, cancelled: 0 },
      workers: [{ worker: "pod-x", runningChunks: 0, rows: ROWS }],
      errors: [{ message: "injected failure (FAIL_RATE) on attempt 1", occurrences: failed }],
    });

    const text = await status(["reported"], { DATABASE_URL: db.url });
    expect(text.stdout).toContain(`batch run ${run.id} "reported" of job users: running (round 1)`);
    expect(text.stdout).toContain(`${failed}  injected failure (FAIL_RATE) on attempt 1`);

    const overview = JSON.parse((await status(["--json"], { DATABASE_URL: db.url })).stdout);
    expect(overview.runs).toHaveLength(1);
    expect(overview.runs[0]).toMatchObject({ id: run.id, status: "running", completed, retrying: failed });
  });

  it("reads 100%, and no negative ETA, when a run's rows done pass its estimated total", async () => {
    // a sampled plan's total is an estimate until its chunks end (src/runs/chunks.ts)
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.1", RETRY_DELAY_S: "60" };
    await seed(["enqueue", "--batch-name", "estimated"], { DATABASE_URL: db.url, ...env });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    const run = await runByName(db.pool, "estimated");
    await db.pool.query("UPDATE batch_jobs SET total_records = processed_records - 100 WHERE id = $1", [run.id]);

    const report = JSON.parse((await status(["estimated", "--json"], { DATABASE_URL: db.url })).stdout);
    expect(report).toMatchObject({ status: "running", percentDone: 100 });
    // the wait for the retry round alone: at least what is left of it once status has answered
    expect(report.etaSeconds).toBeGreaterThanOrEqual(await secondsUntilDue(report.waitingUntil));
    const text = await status(["estimated"], { DATABASE_URL: db.url });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`[${"#".repeat(30)}] 100.0%`);
  });

  it("counts the retry delay in the ETA, and says what the run waits for", async () => {
    // round 0 runs; the retry round's chunks are due in a minute
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.1", RETRY_DELAY_S: "60", PROCESS_DELAY_MS: "1" };
    await seed(["enqueue", "--batch-name", "delayed"], { DATABASE_URL: db.url, ...env });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    const { rows } = await db.pool.query("SELECT min(run_at) AS due FROM graphile_worker.jobs");
    const { due } = rows[0];

    const report = JSON.parse((await status(["delayed", "--json"], { DATABASE_URL: db.url })).stdout);
    expect(report).toMatchObject({ status: "running", round: 1, waitingUntil: due.toISOString() });
    expect(report.rowsPerSecond).toBeGreaterThan(0);
    // nothing runs before the retry round is due: the ETA cannot be shorter than the wait
    expect(report.etaSeconds).toBeGreaterThanOrEqual(await secondsUntilDue(report.waitingUntil));

    const text = await status(["delayed"], { DATABASE_URL: db.url });
    expect(text.stdout).toMatch(/ rows\/s {2}ETA (\d+s|1m\d\ds) \(next chunk due in (\d+s|1m00s)\) /);
  });

  it("says that the errors of a completed run with no failed row were all retried", async () => {
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.1", FAIL_FIRST_ATTEMPTS: "1", RETRY_DELAY_S: "0" };
    await seed(["enqueue", "--batch-name", "recovered"], { DATABASE_URL: db.url, ...env });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    const result = await status(["recovered"], { DATABASE_URL: db.url });
    expect(result.stdout).toContain('"recovered" of job users: completed');
    expect(result.stdout).toContain("completed 3,000  failed 0  retrying 0");
    const lines = result.stdout.trim().split("\n");
    const heading = lines.findIndex((line) => line.startsWith("failed attempts"));
    expect(lines[heading]).toBe("failed attempts, by message (all retried: no row failed for good):");
    expect(lines[heading + 1]).toMatch(/^ +\d+ {2}injected failure \(FAIL_RATE\) on attempt 1$/);
  });

  it("does not list a worker that exited on SIGTERM as running", async () => {
    const env = { CHUNK_SIZE: "500", WORKERS: "2", ROW_CONCURRENCY: "2", PROCESS_DELAY_MS: "20", POD_NAME: "pod-t" };
    await seed(["enqueue", "--batch-name", "stopped"], { DATABASE_URL: db.url, ...env });
    const worker = startWorker([], { DATABASE_URL: db.url, ...env });
    await waitFor("rows to complete", async () => (await runByName(db.pool, "stopped")).processed_records > 100);
    const running = JSON.parse((await status(["stopped", "--json"], { DATABASE_URL: db.url })).stdout);
    expect(running.workers).toEqual([expect.objectContaining({ worker: "pod-t" })]);
    expect(running.workers[0].runningChunks).toBeGreaterThan(0);
    worker.child.kill("SIGTERM");
    await worker.exited;

    const report = JSON.parse((await status(["stopped", "--json"], { DATABASE_URL: db.url })).stdout);
    expect(report.chunks.running).toBe(0);
    expect(report.workers).toEqual([expect.objectContaining({ worker: "pod-t", runningChunks: 0 })]);
    const { rows } = await db.pool.query("SELECT running_chunks FROM batch_workers WHERE worker = 'pod-t'");
    expect(rows).toEqual([{ running_chunks: 0 }]);
  });

  it("--watch follows a run until it ends; the rate and ETA show while it runs", async () => {
    const env = { CHUNK_SIZE: "500", WORKERS: "2", ROW_CONCURRENCY: "4", PROCESS_DELAY_MS: "10" };
    await seed(["enqueue", "--batch-name", "watched"], { DATABASE_URL: db.url, ...env });
    const worker = startWorker(["--once"], { DATABASE_URL: db.url, ...env });
    const watch = start(process.execPath, [STATUS_CLI, "watched", "--watch", "--interval", "1"], {
      DATABASE_URL: db.url,
    });

    await waitFor("a rate", async () => {
      const { rows } = await db.pool.query("SELECT rows_per_second, eta_seconds FROM batch_progress");
      return Number(rows[0].rows_per_second) > 0 && rows[0].eta_seconds > 0;
    });
    const watched = await watch.exited;
    expect((await worker.exited).code).toBe(0);
    expect(watched.code).toBe(0);
    const lines = watched.stdout.trim().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.at(-1)).toMatch(/^run \d+ completed \[#{20}\] 100\.0% 3,000\/3,000 rows/);
  });

  it("says so when there is nothing to show, or no such run", async () => {
    expect((await status([], { DATABASE_URL: db.url })).stdout.trim()).toBe(
      "no batch runs yet (start one with: seed enqueue --job JOB --batch-name NAME)",
    );
    const missing = await status(["nope"], { DATABASE_URL: db.url });
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: no batch run is named or numbered "nope"');
  });
});

describe("the cost of watching", () => {
  const db = useTestDatabase({ users: 1000 });
  beforeAll(async () => {
    await seed(["enqueue", "--batch-name", "cheap"], { DATABASE_URL: db.url, CHUNK_SIZE: "100" });
  });

  it("status reads no users row, however often it is asked", async () => {
    const users = await settledTableScans(db.pool, "users");
    const runs = await tableScans(db.pool, "batch_jobs");
    for (const args of [["cheap", "--json"], ["cheap"], ["--json"]]) {
      expect((await status(args, { DATABASE_URL: db.url })).code).toBe(0);
    }
    await waitFor("statistics to arrive", async () => (await tableScans(db.pool, "batch_jobs")) > runs);
    expect(await tableScans(db.pool, "users")).toBe(users);
  });
});
