import { statusCounts, useTestDatabase } from "../support/database";
import { batch, seed, startWorker } from "../support/processes";
import { runByName, tally, waitFor } from "../support/runs";

const ROWS = 3000;
const ENV = { CHUNK_SIZE: "500", RETRY_DELAY_S: "0" };

/** Jobs nobody asked the workflow for, as a hostile or unlucky user adds them by hand. */
describe("forged and duplicated workflow jobs", () => {
  const db = useTestDatabase({ users: ROWS, each: true });
  let runId: number;
  beforeEach(async () => {
    expect((await seed(["enqueue", "--batch-name", "target"], { DATABASE_URL: db.url, ...ENV })).code).toBe(0);
    runId = (await runByName(db.pool, "target")).id;
  });

  const addQueueJob = (task: string, payload: object, key: string | null = null, priority = 0) =>
    db.pool.query("SELECT graphile_worker.add_job($1, $2::json, job_key := $3, priority := $4)", [
      task,
      JSON.stringify(payload),
      key,
      priority,
    ]);
  const once = async (env: Record<string, string> = {}) =>
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...ENV, ...env }).exited).code).toBe(0);

  /** The jobs that failed for good, and the refusals in the run's history. */
  async function refusals() {
    const { rows: jobs } = await db.pool.query(
      `SELECT task_identifier AS task, last_error AS error FROM graphile_worker.jobs
        WHERE attempts >= max_attempts AND locked_at IS NULL ORDER BY id`,
    );
    const { rows: events } = await db.pool.query(
      "SELECT step, round, chunk_no AS \"chunkNo\", detail FROM batch_events WHERE event = 'job-refused' ORDER BY id",
    );
    return { jobs, events };
  }

  async function runState() {
    const { rows } = await db.pool.query(
      `SELECT r.status, r.round, r.processed_records, r.failed_records, r.retryable_records, r.completed_at,
              (SELECT json_agg(s.step || ' ' || s.round ORDER BY s.finished_at) FROM batch_steps s WHERE s.run_id = r.id) AS steps,
              (SELECT count(*)::int FROM batch_events e WHERE e.run_id = r.id AND e.event <> 'job-refused') AS events
         FROM batch_jobs r WHERE r.id = $1`,
      [runId],
    );
    return rows[0];
  }

  it("refuses a finish for a paused run whose chunks have not run, and the run goes on when resumed", async () => {
    expect((await batch(["pause", "target"], { DATABASE_URL: db.url })).code).toBe(0);
    await addQueueJob("batch_finish", { run: runId, round: 0 });
    await once();

    expect(await runByName(db.pool, "target")).toMatchObject({ status: "paused", processed_records: 0 });
    expect(await statusCounts(db.pool)).toEqual({ pending: ROWS });
    const { jobs, events } = await refusals();
    expect(jobs).toEqual([{ task: "batch_finish", error: expect.stringContaining("refused") }]);
    expect(jobs[0].error).toContain("6 chunk(s) queued or running");
    expect(events).toEqual([{ step: "finish", round: 0, chunkNo: null, detail: jobs[0].error }]);

    expect((await batch(["resume", "target"], { DATABASE_URL: db.url })).code).toBe(0);
    await once();
    expect(await runByName(db.pool, "target")).toMatchObject({ status: "completed", processed_records: ROWS });
  });

  it("refuses finishes of the running round and of the next one, and the run ends as if they were never added", async () => {
    const slow = { ...ENV, FAIL_RATE: "0.1", WORKERS: "2", ROW_CONCURRENCY: "4", PROCESS_DELAY_MS: "5" };
    const worker = startWorker([], { DATABASE_URL: db.url, ...slow });
    try {
      await waitFor("some rows done", async () => (await runByName(db.pool, "target")).processed_records > 100);
      expect((await runByName(db.pool, "target")).round).toBe(0);
      // ahead of the waiting chunks: taken by the next worker slot that frees up
      await addQueueJob("batch_finish", { run: runId, round: 0 }, null, -1);
      await addQueueJob("batch_finish", { run: runId, round: 1 }, null, -1);
      await waitFor("the run to end", async () => (await runByName(db.pool, "target")).status === "completed");
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }

    const state = await runState();
    expect(state.steps).toEqual(["plan 0", "finish 0", "finish 1", "finish 2"]);
    const counts = await tally(db.pool, "target", 3);
    expect(counts.run.processed_records).toBe(counts.completed);
    expect(counts.run.failed_records).toBe(counts.failed);
    expect(counts.completed + counts.failed).toBe(ROWS);
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'failed' AND attempts < 3",
    );
    expect(rows[0].n).toBe(0);
    const { rows: open } = await db.pool.query(
      "SELECT count(*)::int AS n FROM batch_chunks WHERE status IN ('queued', 'running')",
    );
    expect(open[0].n).toBe(0);
    const { jobs, events } = await refusals();
    expect(jobs.map((job) => job.task)).toEqual(["batch_finish", "batch_finish"]);
    expect(events.map((event) => event.round).sort()).toEqual([0, 1]);
  });

  it("changes nothing of a completed run: a finish of another round, a chunk or a plan fail for good", async () => {
    await once();
    const before = await runState();
    expect(before.status).toBe("completed");

    await addQueueJob("batch_finish", { run: runId, round: 7 }, `batch:${runId}:7:finish`);
    await addQueueJob("batch_finish", { run: runId, round: 0 });
    await addQueueJob("batch_chunk", { run: runId, round: 0, chunk: 0 });
    await addQueueJob("batch_plan", { run: runId });
    await once();

    expect(await runState()).toEqual(before);
    const { jobs, events } = await refusals();
    // the finish of round 0 and the plan were recorded: they replay what they did
    expect(jobs).toEqual([{ task: "batch_finish", error: expect.stringContaining("batch run") }]);
    expect(jobs[0].error).toContain("has already completed");
    expect(events).toHaveLength(1);
  });

  it("fails for good a chunk job for a chunk its run does not have", async () => {
    await addQueueJob("batch_chunk", { run: runId, round: 0, chunk: 99 });
    await addQueueJob("batch_chunk", { run: runId, round: 3, chunk: 0 });
    await once();

    expect(await runByName(db.pool, "target")).toMatchObject({ status: "completed", processed_records: ROWS });
    const { jobs, events } = await refusals();
    // the worker runs the two jobs side by side: they end in either order
    expect(jobs.map((job) => job.error).sort()).toEqual([
      `chunk 0 of round 3 of batch run ${runId} refused: the run has no such chunk`,
      `chunk 99 of round 0 of batch run ${runId} refused: the run has no such chunk`,
    ]);
    expect(events.map((event) => [event.step, event.round, event.chunkNo]).sort()).toEqual([
      ["chunk", 0, 99],
      ["chunk", 3, 0],
    ]);
  });
});
