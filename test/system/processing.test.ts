import { failsOnAttempt, rowFraction } from "../../src/processing/fault-injection";
import { statusCounts, useTestDatabase } from "../support/database";
import { seed, startWorker } from "../support/processes";
import { lockedJobs, runByName, tally, waitFor } from "../support/runs";

const ROWS = 3000;

describe("processing a batch run with graphile-worker", () => {
  const db = useTestDatabase({ users: ROWS, each: true });

  async function enqueue(name: string, env: Record<string, string> = {}): Promise<number> {
    const result = await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url, ...env });
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout).run;
  }

  async function drain(env: Record<string, string> = {}) {
    const result = await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited;
    expect(result).toMatchObject({ code: 0 });
    return result;
  }

  it("takes every row to completed, with results, attempt counts and run counters", async () => {
    const env = { CHUNK_SIZE: "400", WORKERS: "3" };
    await enqueue("full", env);
    await drain(env);

    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const counts = await tally(db.pool, "full", 3);
    expect(counts.run).toMatchObject({
      status: "completed",
      total_records: ROWS,
      processed_records: ROWS,
      failed_records: 0,
      retryable_records: 0,
    });
    expect(counts.completed).toBe(ROWS);
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE attempts = 1 AND processed_at IS NOT NULL AND last_error IS NULL)::int AS once,
              count(*) FILTER (WHERE email_normalized = lower(email) AND segment ~ '^(young|middle|senior)-(low|mid|high)$')::int AS results
         FROM users`,
    );
    expect(rows[0]).toEqual({ once: ROWS, results: ROWS });
    // the 8 planned chunks, and any a chunk that finished first split off one still running
    // (src/chunks/chunk-split.ts): every chunk done, their rows the run's
    const { rows: chunks } = await db.pool.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'done')::int AS done,
              sum(rows_completed)::int AS completed FROM batch_chunks`,
    );
    expect(chunks[0].n).toBeGreaterThanOrEqual(8);
    expect(chunks[0]).toEqual({ n: chunks[0].n, done: chunks[0].n, completed: ROWS });
    const { rows: steps } = await db.pool.query("SELECT step, round, result FROM batch_steps ORDER BY finished_at");
    expect(steps).toEqual([
      { step: "plan", round: 0, result: { chunks: 8, rows: ROWS } },
      { step: "finish", round: 0, result: { next: "completed" } },
    ]);
    const { rows: jobs } = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
    expect(jobs[0].n).toBe(0);
  });

  it("retries failing rows in later rounds until MAX_ATTEMPTS, then leaves them failed with their error", async () => {
    const env = { CHUNK_SIZE: "500", FAIL_RATE: "0.1", MAX_ATTEMPTS: "3", RETRY_DELAY_S: "0" };
    await enqueue("faulty", env);
    await drain(env);

    const failing = Array.from({ length: ROWS }, (_, i) => i + 1).filter((id) => rowFraction(id) < 0.1);
    expect(failing.length).toBeGreaterThan(200);
    const { rows: failed } = await db.pool.query(
      "SELECT id::int, attempts, last_error FROM users WHERE batch_status = 'failed' ORDER BY id",
    );
    expect(failed.map((row) => row.id)).toEqual(failing);
    for (const row of failed) {
      expect(row).toMatchObject({ attempts: 3, last_error: "injected failure (FAIL_RATE) on attempt 3" });
    }
    const { rows: others } = await db.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'completed' AND attempts = 1",
    );
    expect(others[0].n).toBe(ROWS - failing.length);

    const counts = await tally(db.pool, "faulty", 3);
    expect(counts.run).toMatchObject({
      status: "completed",
      round: 2,
      processed_records: ROWS - failing.length,
      failed_records: failing.length,
      retryable_records: 0,
    });
    expect(counts.failed).toBe(failing.length);
    const { rows: rounds } = await db.pool.query(
      "SELECT round, sum(planned_rows)::int AS rows FROM batch_chunks GROUP BY round ORDER BY round",
    );
    expect(rounds).toEqual([
      { round: 0, rows: ROWS },
      { round: 1, rows: failing.length },
      { round: 2, rows: failing.length },
    ]);
  });

  it("completes rows whose failures were passing", async () => {
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.2", FAIL_FIRST_ATTEMPTS: "1", RETRY_DELAY_S: "0" };
    await enqueue("flaky", env);
    await drain(env);
    const faults = { delayMs: 0, failRate: 0.2, failFirstAttempts: 1 };
    const flaky = Array.from({ length: ROWS }, (_, i) => i + 1).filter((id) => failsOnAttempt(id, 1, faults));
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const { rows } = await db.pool.query("SELECT id::int FROM users WHERE attempts = 2 ORDER BY id");
    expect(rows.map((row) => row.id)).toEqual(flaky);
    expect((await runByName(db.pool, "flaky")).processed_records).toBe(ROWS);
  });

  it("counts rows failed for good when the retry rounds run out before MAX_ATTEMPTS", async () => {
    const env = { CHUNK_SIZE: "3000", FAIL_RATE: "0.05", MAX_ATTEMPTS: "5", RETRY_ROUNDS: "1", RETRY_DELAY_S: "0" };
    await enqueue("short", env);
    await drain(env);
    const counts = await tally(db.pool, "short", 5);
    expect(counts.run.status).toBe("completed");
    expect(counts.run.failed_records).toBe(counts.failed);
    expect(counts.run.failed_records).toBeGreaterThan(0);
    const { rows } = await db.pool.query("SELECT DISTINCT attempts FROM users WHERE batch_status = 'failed'");
    expect(rows).toEqual([{ attempts: 2 }]);
  });

  it("keeps the counters equal to the rows at every moment of a run", async () => {
    const env = {
      CHUNK_SIZE: "300",
      WORKERS: "3",
      PROCESS_DELAY_MS: "2",
      ROW_CONCURRENCY: "8",
      FAIL_RATE: "0.1",
      RETRY_DELAY_S: "0",
    };
    await enqueue("watched", env);
    const worker = startWorker(["--once"], { DATABASE_URL: db.url, ...env });
    let samples = 0;
    let ended = false;
    worker.exited.then(() => {
      ended = true;
    });
    while (!ended) {
      const counts = await tally(db.pool, "watched", 3);
      expect(counts.run.processed_records).toBe(counts.completed);
      expect(counts.run.failed_records).toBe(counts.failed);
      expect(counts.run.retryable_records).toBe(counts.retryable);
      expect(counts.completed + counts.failed + counts.retryable + counts.pending).toBe(ROWS);
      samples++;
    }
    expect((await worker.exited).code).toBe(0);
    expect(samples).toBeGreaterThan(5);
    expect((await runByName(db.pool, "watched")).status).toBe("completed");
  });

  it("retries a chunk that throws with graphile-worker's backoff, without losing or repeating an outcome", async () => {
    // the first write touching row 1234 fails, as a transient database error would (sequences
    // ignore rollbacks); a serialization failure: no value of the row's own, which would fail the row alone
    await db.pool.query(`
      CREATE SEQUENCE fail_once;
      CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('fail_once') = 1 THEN RAISE EXCEPTION 'simulated database failure' USING ERRCODE = '40001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_once BEFORE UPDATE ON users FOR EACH ROW WHEN (NEW.id = 1234) EXECUTE FUNCTION fail_once();`);
    const env = { CHUNK_SIZE: "1000" };
    await enqueue("bumpy", env);
    const worker = startWorker([], { DATABASE_URL: db.url, ...env });
    await waitFor("the run to complete", async () => (await runByName(db.pool, "bumpy")).status === "completed");
    worker.child.kill("SIGTERM");
    await worker.exited;

    expect(worker.output.stderr).toContain("simulated database failure");
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const { rows } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(rows).toEqual([{ attempts: 1 }]);
    const { rows: chunk } = await db.pool.query(
      "SELECT attempts FROM batch_chunks WHERE 1234 BETWEEN first_id AND last_id",
    );
    expect(chunk[0].attempts).toBe(2);
    expect((await runByName(db.pool, "bumpy")).processed_records).toBe(ROWS);
    expect(await lockedJobs(db.pool)).toBe(0);
  });
});
