import { parseConfig } from "../src/config";
import { withPool } from "../src/db/pool";
import { runChunkJob } from "../workflows/chunk-activity";
import { finishRound } from "../workflows/finish-round";
import { runSettings, startRun } from "../workflows/start-run";
import { createMigratedDatabase, insertUsers, statusCounts, type TestDatabase } from "./support/database";
import { inProcessDeps } from "./support/in-process";
import { usersJob } from "./support/jobs";
import { seed, startWorker } from "./support/processes";
import { runByName, waitFor } from "./support/runs";

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

describe("a running chunk giving half its rows to an idle worker", () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createMigratedDatabase();
  });
  afterEach(() => db.drop());

  it("splits the largest running chunk when one finishes and none waits; every row still processed once", async () => {
    await insertUsers(db.pool, 6000);
    const pool = withPool(db.pool);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "3000" }), usersJob);
    const { run } = await startRun(pool, usersJob, "halves", settings, "test", "now");
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
    const slowChunk = runChunkJob(slow, { runId: run.id, round: 0, chunkNo: 1 }, await job(1));
    await waitFor("chunk 1 to run", async () => {
      const { rows } = await db.pool.query("SELECT status FROM batch_chunks WHERE run_id = $1 AND chunk_no = 1", [
        run.id,
      ]);
      return rows[0]?.status === "running";
    });
    // chunk 0 ends while chunk 1 runs, and no chunk waits: it gives chunk 1's upper half to a new chunk
    await runChunkJob(fast, { runId: run.id, round: 0, chunkNo: 0 }, await job(0));
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
      await runChunkJob(fast, { runId: run.id, round: 0, chunkNo: next }, await job(next));
    }
    await slowChunk;
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
