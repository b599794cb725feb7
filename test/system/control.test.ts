import { createMigratedDatabase, insertUsers, statusCounts, type TestDatabase } from "../support/database";
import { batch, type Running, seed, startWorker } from "../support/processes";
import { runByName, tally, waitFor } from "../support/runs";

const ROWS = 4000;
const SLOW = { CHUNK_SIZE: "500", WORKERS: "2", ROW_CONCURRENCY: "4", PROCESS_DELAY_MS: "10" };

describe("pause, resume and cancel during a real run", () => {
  let db: TestDatabase;
  let worker: Running | undefined;
  beforeEach(async () => {
    db = await createMigratedDatabase();
    await insertUsers(db.pool, ROWS);
    expect((await seed(["enqueue", "--batch-name", "steered"], { DATABASE_URL: db.url, ...SLOW })).code).toBe(0);
  });
  afterEach(async () => {
    worker?.child.kill("SIGTERM");
    await worker?.exited;
    worker = undefined;
    await db.drop();
  });

  const control = async (command: string, run = "steered") => {
    const result = await batch([command, run], { DATABASE_URL: db.url });
    return { ...result, json: result.code === 0 ? JSON.parse(result.stdout) : undefined };
  };

  async function chunkStates(): Promise<Record<string, number>> {
    const { rows } = await db.pool.query("SELECT status, count(*)::int AS n FROM batch_chunks GROUP BY status");
    return Object.fromEntries(rows.map((row) => [row.status, row.n]));
  }

  async function waitingChunkJobs(): Promise<number> {
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE key LIKE '%:chunk:%' AND locked_at IS NULL",
    );
    return rows[0].n;
  }

  const progressAtLeast = (rows: number) =>
    waitFor(`${rows} rows processed`, async () => (await runByName(db.pool, "steered")).processed_records >= rows);

  it("pause lets running chunks finish and starts no other; resume takes the run to its end", async () => {
    worker = startWorker([], { DATABASE_URL: db.url, ...SLOW });
    await progressAtLeast(200);
    const paused = await control("pause");
    expect(paused.json).toMatchObject({ status: "paused", changed: true });
    expect(await waitingChunkJobs()).toBe(0);

    await waitFor("running chunks to finish", async () => (await chunkStates()).running === undefined);
    const states = await chunkStates();
    expect(states.done).toBeGreaterThanOrEqual(1);
    const before = await runByName(db.pool, "steered");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await runByName(db.pool, "steered")).toEqual(before);
    expect(await chunkStates()).toEqual(states);
    expect((await control("pause")).json).toMatchObject({ status: "paused", changed: false });

    expect((await control("resume")).json).toMatchObject({ status: "running", changed: true });
    expect((await control("resume")).json).toMatchObject({ status: "running", changed: false });
    await waitFor("the run to complete", async () => (await runByName(db.pool, "steered")).status === "completed");
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const { rows } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(rows).toEqual([{ attempts: 1 }]);
  });

  it("cancel stops running chunks after their slice, removes the rest, and leaves unprocessed rows pending", async () => {
    worker = startWorker([], { DATABASE_URL: db.url, ...SLOW });
    await progressAtLeast(200);
    const cancelled = await control("cancel");
    expect(cancelled.code).toBe(0);
    expect(["cancelling", "cancelled"]).toContain(cancelled.json.status);
    await waitFor("the cancel to complete", async () => (await runByName(db.pool, "steered")).status === "cancelled");

    // the chunk whose end settled the cancel has its job marked done just after: the queue empties
    await waitFor("the queue to empty", async () => {
      const { rows: jobs } = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
      return jobs[0].n === 0;
    });
    const { rows: backlog } = await db.pool.query("SELECT rows_left::int FROM batch_backlog");
    expect(backlog[0].rows_left).toBe(0);
    const counts = await tally(db.pool, "steered", 3);
    expect(counts.run.processed_records).toBe(counts.completed);
    expect(counts.completed).toBeLessThan(ROWS);
    expect(counts.pending).toBe(ROWS - counts.completed);
    const states = await chunkStates();
    expect(states.running).toBeUndefined();
    expect(states.queued).toBeUndefined();
    expect(states.cancelled).toBeGreaterThanOrEqual(1);

    expect((await control("cancel")).json).toMatchObject({ status: "cancelled", changed: false });
    const resume = await control("resume");
    expect(resume.code).toBe(1);
    expect(resume.stderr.trim()).toBe(
      'error: batch run "steered" was cancelled, which ended it; its unprocessed rows are pending: ' +
        "start a new run to process them (seed enqueue --job users --batch-name NEW_NAME)",
    );

    // the rows left pending are there for the next run
    expect((await seed(["enqueue", "--batch-name", "again"], { DATABASE_URL: db.url })).code).toBe(0);
    expect((await runByName(db.pool, "again")).total_records).toBe(ROWS - counts.completed);
  });

  it("refuses to cancel a finished run and names unknown runs", async () => {
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, CHUNK_SIZE: "2000" }).exited).code).toBe(0);
    const cancel = await control("cancel");
    expect(cancel.code).toBe(1);
    expect(cancel.stderr.trim()).toBe('error: batch run "steered" has already completed; there is nothing to cancel');
    expect((await runByName(db.pool, "steered")).status).toBe("completed");

    const unknown = await control("pause", "no-such-run");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe('error: no batch run is named or numbered "no-such-run"');
    const usage = await batch(["pause"], { DATABASE_URL: db.url });
    expect(usage.code).toBe(2);
  });

  it("finds a run by its id as well as its name", async () => {
    const { id } = await runByName(db.pool, "steered");
    expect((await control("pause", String(id))).json).toMatchObject({ run: id, batch: "steered", status: "paused" });
  });
});
