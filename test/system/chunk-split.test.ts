import { randomInt } from "node:crypto";
import pg from "pg";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { finishRound } from "../../workflows/finish-round";
import { runSettings, startRun } from "../../workflows/start-run";
import { insertUsers, statusCounts, type TestDatabase, useTestDatabase } from "../support/database";
import { inProcessDeps } from "../support/in-process";
import { usersJob } from "../support/jobs";
import { batch, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";
import { useWorkersAndDatabase } from "../support/workers";

/** The chunks of the run's round 0, in key order, and whether they tile `first`..`last` exactly. */
async function chunks(db: TestDatabase, runId: number) {
  const { rows } = await db.pool.query<{ chunk_no: number; first_id: number; last_id: number; status: string }>(
    `SELECT chunk_no, first_id::int, last_id::int, status FROM batch_chunks
      WHERE run_id = $1 AND round = 0 ORDER BY first_id`,
    [runId],
  );
  const gaps = rows.slice(1).filter((chunk, i) => chunk.first_id !== (rows[i]?.last_id ?? 0) + 1);
  return { rows, tiled: gaps.length === 0 };
}

/**
 * Registers a job pool named `test` as alive, as a worker's liveness does (src/worker/liveness.ts):
 * a chunk is split only while the worker holding its job is. Returns the end of its session.
 */
async function liveTestPool(db: TestDatabase): Promise<() => Promise<void>> {
  const session = new pg.Client({ connectionString: db.url });
  await session.connect();
  const lockKey = randomInt(1, 2 ** 47);
  await session.query("SELECT pg_advisory_lock($1)", [lockKey]);
  await session.query(
    "INSERT INTO worker_sessions (pool_id, pod, host, pid, lock_key) VALUES ('test', 'test', 'test', 0, $1)",
    [lockKey],
  );
  return () => session.end();
}

describe("a running chunk giving half its rows to an idle worker", () => {
  const db = useTestDatabase({ each: true });

  it("splits the largest running chunk when one finishes and none waits; every row still processed once", async () => {
    await insertUsers(db.pool, 6000);
    const pool = withPool(db.pool);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "3000" }), usersJob);
    const { run } = await startRun(pool, usersJob, "halves", settings, "test", "now");
    const endSession = await liveTestPool(db);
    const fast = inProcessDeps(db.pool, 0, true);
    // chunk 1's records take 20 ms each, 8 at a time: 7.5 s for its 3,000 rows. Chunk 0's, without
    // delay, end in well under the 3.5 s after which chunk 1 would have fewer rows left than one
    // of chunk 0's slices (1,600): too few to split
    const slow = { ...fast, faults: { delayMs: 20, failRate: 0, failFirstAttempts: undefined } };
    // the chunk's job taken, as a worker running it holds it
    const job = async (chunkNo: number) => {
      const key = `batch:${run.id}:0:chunk:${chunkNo}`;
      await db.pool.query(
        "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'test', attempts = 1 WHERE key = $1",
        [key],
      );
      return { key, attempt: 1, maxAttempts: 3 };
    };
    const slowChunk = runChunkQueueJob(slow, { runId: run.id, round: 0, chunkNo: 1 }, await job(1));
    await waitFor("chunk 1 to run", async () => {
      const { rows } = await db.pool.query("SELECT status FROM batch_chunks WHERE run_id = $1 AND chunk_no = 1", [
        run.id,
      ]);
      return rows[0]?.status === "running";
    });
    // chunk 0 ends while chunk 1 runs, and no chunk waits: it gives chunk 1's upper half to a new chunk
    await runChunkQueueJob(fast, { runId: run.id, round: 0, chunkNo: 0 }, await job(0));
    const { rows: added } = await db.pool.query(
      "SELECT chunk_no, first_id::int, status FROM batch_chunks WHERE run_id = $1 AND chunk_no = 2",
      [run.id],
    );
    expect(added).toEqual([{ chunk_no: 2, first_id: expect.any(Number), status: "queued" }]);
    const { rows: queued } = await db.pool.query("SELECT key FROM graphile_worker.jobs WHERE key LIKE $1", [
      `batch:${run.id}:0:chunk:2`,
    ]);
    expect(queued).toHaveLength(1);
    // each new chunk, when it ends, splits chunk 1 again while enough of it is left
    for (let next = 2; ; next++) {
      const { rows: waiting } = await db.pool.query(
        "SELECT 1 FROM batch_chunks WHERE run_id = $1 AND chunk_no = $2 AND status = 'queued'",
        [run.id, next],
      );
      if (waiting.length === 0) break;
      await runChunkQueueJob(fast, { runId: run.id, round: 0, chunkNo: next }, await job(next));
    }
    await slowChunk;
    await endSession();
    await finishRound(pool, run.id, 0, "test");

    const { rows, tiled } = await chunks(db, run.id);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(tiled).toBe(true);
    expect([rows[0]?.first_id, rows.at(-1)?.last_id]).toEqual([1, 6000]);
    expect(rows.every((chunk) => chunk.status === "done")).toBe(true);
    expect(await statusCounts(db.pool)).toEqual({ completed: 6000 });
    const { rows: attempts } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(attempts).toEqual([{ attempts: 1 }]);
    expect(await runByName(db.pool, "halves")).toMatchObject({
      status: "completed",
      processed_records: 6000,
      total_records: 6000,
    });
    const { rows: counted } = await db.pool.query("SELECT chunks_total, chunks_done FROM batch_jobs WHERE id = $1", [
      run.id,
    ]);
    expect(counted[0]).toEqual({ chunks_total: rows.length, chunks_done: rows.length });
    const { rows: splits } = await db.pool.query(
      "SELECT chunk_no, counts FROM batch_events WHERE run_id = $1 AND event = 'chunk-split'",
      [run.id],
    );
    // every new chunk came from chunk 1, the one running
    expect(splits).toHaveLength(rows.length - 2);
    expect(splits.every((split) => split.chunk_no === 1 && split.counts.given > 0)).toBe(true);
  });

  it("waits for rows another chunk's slice still holds, then ends done without taking them twice", async () => {
    await insertUsers(db.pool, 200);
    const pool = withPool(db.pool);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "200" }), usersJob);
    const { run } = await startRun(pool, usersJob, "held", settings, "test", "now");
    // a slice of the chunk this one was split from, claimed part by part past the split
    const holder = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM users WHERE id > 150 FOR UPDATE");
      await db.pool.query(
        "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'test', attempts = 1 WHERE key = $1",
        [`batch:${run.id}:0:chunk:0`],
      );
      const chunk = runChunkQueueJob(
        inProcessDeps(db.pool, 0, true),
        { runId: run.id, round: 0, chunkNo: 0 },
        { key: `batch:${run.id}:0:chunk:0`, attempt: 1, maxAttempts: 3 },
      );
      await waitFor("the chunk to wait for the held rows", async () => {
        const { rows } = await db.pool.query(
          "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE OF t%'",
        );
        return rows.length > 0;
      });
      await holder.query(
        `UPDATE users SET batch_status = 'completed', attempts = 1, batch_id = $1, processed_at = now()
          WHERE id > 150`,
        [run.id],
      );
      await holder.query("COMMIT");
      await chunk;
    } finally {
      holder.release();
    }
    const { rows } = await db.pool.query("SELECT status, rows_completed FROM batch_chunks WHERE run_id = $1", [run.id]);
    expect(rows).toEqual([{ status: "done", rows_completed: 150 }]);
    expect(await statusCounts(db.pool)).toEqual({ completed: 200 });
    const { rows: attempts } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(attempts).toEqual([{ attempts: 1 }]);
  });

  it("keeps every row processed once when a worker's slots split each other's chunks at the run's end", async () => {
    await insertUsers(db.pool, 6000);
    // 5 chunks on 4 slots: the last one is split by the slots that finish while it runs
    const env = { DATABASE_URL: db.url, CHUNK_SIZE: "1200", PROCESS_DELAY_MS: "5", WORKERS: "4", ROW_CONCURRENCY: "4" };
    expect((await seed(["enqueue", "--batch-name", "one-chunk"], env)).code).toBe(0);
    const worker = startWorker(["--once"], env);
    const exit = await worker.exited;
    expect(exit.code).toBe(0);
    const run = await waitFor("the run to complete", async () => {
      const found = await runByName(db.pool, "one-chunk");
      return found.status === "completed" && found;
    });
    expect(run).toMatchObject({ processed_records: 6000, total_records: 6000 });
    const { rows, tiled } = await chunks(db, run.id);
    expect(rows.length).toBeGreaterThanOrEqual(5);
    expect(tiled).toBe(true);
    expect(await statusCounts(db.pool)).toEqual({ completed: 6000 });
    const { rows: attempts } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(attempts).toEqual([{ attempts: 1 }]);
  });
});

describe("a worker starting while chunks run and none waits", () => {
  const { db, workers } = useWorkersAndDatabase("SIGKILL");

  // one chunk of 4,000 rows; 20 ms a record, 4 at a time: about 20 s for one slot alone
  const SLOW = { CHUNK_SIZE: "10000", ROW_CONCURRENCY: "4", PROCESS_DELAY_MS: "20" };

  async function splitEvents(runId: number) {
    const { rows } = await db.pool.query<{ actor: string; chunk_no: number; detail: string; given: number }>(
      `SELECT actor, chunk_no, detail, (counts->>'given')::int AS given FROM batch_events
        WHERE run_id = $1 AND event = 'chunk-split' ORDER BY id`,
      [runId],
    );
    return rows;
  }

  const control = async (command: string, name: string) =>
    expect((await batch([command, name], { DATABASE_URL: db.url })).code).toBe(0);

  it("splits nothing while the run is paused, then splits the running chunk for each of its slots", async () => {
    await insertUsers(db.pool, 4000);
    expect((await seed(["enqueue", "--batch-name", "scale-out"], { DATABASE_URL: db.url, ...SLOW })).code).toBe(0);
    const run = await runByName(db.pool, "scale-out");
    expect((await chunks(db, run.id)).rows).toHaveLength(1);
    const first = startWorker([], { DATABASE_URL: db.url, ...SLOW, WORKERS: "1", POD_NAME: "first" });
    workers.push(first);
    await waitFor("the first worker to be in its chunk", async () => {
      return (await runByName(db.pool, "scale-out")).processed_records > 100;
    });

    // paused, the chunk goes on, and nothing waits: a pod starting finds nothing, and splits nothing
    await control("pause", "scale-out");
    const idle = await startWorker(["--once"], { DATABASE_URL: db.url, ...SLOW, WORKERS: "2", POD_NAME: "idle" })
      .exited;
    expect(idle.code).toBe(0);
    expect(await splitEvents(run.id)).toEqual([]);
    expect((await chunks(db, run.id)).rows).toHaveLength(1);

    await control("resume", "scale-out");
    const late = await startWorker(["--once"], { DATABASE_URL: db.url, ...SLOW, WORKERS: "2", POD_NAME: "late" })
      .exited;
    expect(late.code).toBe(0);
    const done = await waitFor("the run to complete", async () => {
      const found = await runByName(db.pool, "scale-out");
      return found.status === "completed" && found;
    });
    expect(done).toMatchObject({ processed_records: 4000, total_records: 4000 });

    // at its start, the late pod split the running chunk once for each of its two slots
    const splits = await splitEvents(run.id);
    const atStart = splits.filter((split) => split.detail.endsWith("for a worker starting"));
    expect(atStart).toHaveLength(2);
    expect(atStart.every((split) => split.actor === "late" && split.chunk_no === 0 && split.given > 0)).toBe(true);
    const given = atStart.map((split) => Number(/to chunk (\d+)/.exec(split.detail)?.[1]));
    expect(given).toEqual([1, 2]);
    // and its slots ran those chunks: their rows are this run's, processed once
    const { rows: ran } = await db.pool.query(
      `SELECT c.chunk_no, c.worker, c.status, count(u.id)::int AS rows,
              count(u.id) FILTER (WHERE u.batch_status = 'completed' AND u.batch_id = $1 AND u.attempts = 1)::int AS once
         FROM batch_chunks c JOIN users u ON u.id BETWEEN c.first_id AND c.last_id
        WHERE c.run_id = $1 AND c.chunk_no = ANY($2::int[])
        GROUP BY c.chunk_no, c.worker, c.status ORDER BY c.chunk_no`,
      [run.id, given],
    );
    expect(ran.map((chunk) => chunk.worker)).toEqual(["late", "late"]);
    expect(ran.every((chunk) => chunk.status === "done" && chunk.rows > 0 && chunk.once === chunk.rows)).toBe(true);

    const { rows, tiled } = await chunks(db, run.id);
    expect(tiled).toBe(true);
    expect([rows[0]?.first_id, rows.at(-1)?.last_id]).toEqual([1, 4000]);
    expect(rows.every((chunk) => chunk.status === "done")).toBe(true);
    expect(await statusCounts(db.pool)).toEqual({ completed: 4000 });
    const { rows: attempts } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(attempts).toEqual([{ attempts: 1 }]);
    const { rows: counted } = await db.pool.query("SELECT chunks_total, chunks_done FROM batch_jobs WHERE id = $1", [
      run.id,
    ]);
    expect(counted[0]).toEqual({ chunks_total: rows.length, chunks_done: rows.length });
  });

  it("splits nothing when no chunk runs: a waiting chunk is its slots' work already", async () => {
    await insertUsers(db.pool, 1000);
    const env = { DATABASE_URL: db.url, CHUNK_SIZE: "10000", WORKERS: "2", POD_NAME: "only" };
    expect((await seed(["enqueue", "--batch-name", "queued"], env)).code).toBe(0);
    const run = await runByName(db.pool, "queued");
    const worker = await startWorker(["--once"], env).exited;
    expect(worker.code).toBe(0);
    const done = await waitFor("the run to complete", async () => {
      const found = await runByName(db.pool, "queued");
      return found.status === "completed" && found;
    });
    expect(done).toMatchObject({ processed_records: 1000 });
    expect(await splitEvents(run.id)).toEqual([]);
    expect((await chunks(db, run.id)).rows).toEqual([{ chunk_no: 0, first_id: 1, last_id: 1000, status: "done" }]);
  });
});
