import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import type { SubsetRequest } from "../../src/runs/subset";
import { planRun } from "../../workflows/plan-run";
import { NothingToProcessError, RunStartedOtherwiseError, runSettings, startRun } from "../../workflows/start-run";
import { type TestDatabase, useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { runDueJobs } from "../support/one-job";
import { runByName } from "../support/runs";

/**
 * A run over part of the job's rows (seed enqueue --from/--to, --keys): it plans, claims, counts
 * and backlogs only those rows, and leaves the others pending for a later run.
 */

const USERS = 3000;
const settings = runSettings(parseConfig({ CHUNK_SIZE: "150", MAX_ATTEMPTS: "1" }), usersJob);

const keysDir = fs.mkdtempSync(path.join(os.tmpdir(), "run-keys-"));
afterAll(() => fs.rmSync(keysDir, { recursive: true, force: true }));

/** A file of keys holding `text`. */
function keysFile(name: string, text: string): string {
  const file = path.join(keysDir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The ids of the users rows a run completed, lowest first. */
async function completedIds(db: TestDatabase, runId: number): Promise<number[]> {
  const { rows } = await db.pool.query<{ id: number }>(
    "SELECT id::int FROM users WHERE batch_id = $1 AND batch_status = 'completed' ORDER BY id",
    [runId],
  );
  return rows.map((row) => row.id);
}

const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, index) => first + index);

/** Starts and plans a run over `subset`; with `sampled`, the plan samples rather than counts. */
async function start(db: TestDatabase, name: string, subset: SubsetRequest | undefined, sampled = false) {
  const pool = withPool(db.pool);
  if (!sampled) return startRun(pool, usersJob, name, settings, "test", "now", subset);
  const started = await startRun(pool, usersJob, name, settings, "test", "by-worker", subset);
  await planRun(pool, started.run.id, "test", { sampling: { fromRows: 1, sampleRows: 600 } });
  return started;
}

/** The run's counters and its rows in the table agree: every row it took, once. */
async function expectExactCounters(db: TestDatabase, name: string, rows: number) {
  const run = await runByName(db.pool, name);
  const { rows: counted } = await db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM users WHERE batch_id = $1",
    [run.id],
  );
  expect(run).toMatchObject({ status: "completed", total_records: rows, processed_records: rows, failed_records: 0 });
  expect(counted[0]?.n).toBe(rows);
}

describe("a run over a key range", () => {
  const db = useTestDatabase({ users: USERS, each: true });

  it("plans, backlogs and processes exactly the rows of the range, the rest left pending", async () => {
    const { run } = await start(db, "range", { from: 1001n, to: 1900n });
    const { rows: backlog } = await db.pool.query(
      `SELECT rows_left::int, chunks_left::int = (SELECT count(*) FROM batch_chunks WHERE run_id = $1) AS every_chunk
         FROM batch_backlog_by_job WHERE job = 'users'`,
      [run.id],
    );
    expect(backlog).toEqual([{ rows_left: 900, every_chunk: true }]);
    expect(await runByName(db.pool, "range")).toMatchObject({ total_records: 900 });

    await runDueJobs(db.pool);
    expect(await completedIds(db, run.id)).toEqual(range(1001, 1900));
    await expectExactCounters(db, "range", 900);
    const { rows: pending } = await db.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'pending'",
    );
    expect(pending[0].n).toBe(USERS - 900);
    const { rows: after } = await db.pool.query("SELECT rows_left::int FROM batch_backlog");
    expect(after).toEqual([{ rows_left: 0 }]);
  });

  it("with one end only, takes every row from or up to it", async () => {
    const { run: low } = await start(db, "to", { to: 200n });
    await runDueJobs(db.pool);
    expect(await completedIds(db, low.id)).toEqual(range(1, 200));
    const { run: high } = await start(db, "from", { from: 2901n });
    await runDueJobs(db.pool);
    expect(await completedIds(db, high.id)).toEqual(range(2901, USERS));
  });

  it("sampled, as a large table's plan is, still takes every row of the range and no other", async () => {
    const { run } = await start(db, "sampled", { from: 700n, to: 2299n }, true);
    await runDueJobs(db.pool);
    expect(await completedIds(db, run.id)).toEqual(range(700, 2299));
    await expectExactCounters(db, "sampled", 1600);
  });

  it("finds nothing to process in a range done, while the rows outside it wait", async () => {
    await start(db, "first", { from: 1n, to: 100n });
    await runDueJobs(db.pool);
    await expect(start(db, "again", { from: 1n, to: 100n })).rejects.toThrow(NothingToProcessError);
    await expect(start(db, "again", { from: 1n, to: 100n })).rejects.toThrow(/of keys 1 to 100 in users/);
    const { run } = await start(db, "rest", undefined);
    expect(run.settings.subset).toBeUndefined();
    expect(await runByName(db.pool, "rest")).toMatchObject({ total_records: USERS - 100 });
  });

  it("refuses the same name with another subset, naming the difference", async () => {
    await start(db, "named", { from: 1n, to: 100n });
    expect((await start(db, "named", { from: 1n, to: 100n })).created).toBe(false);
    await expect(start(db, "named", { from: 1n, to: 200n })).rejects.toThrow(RunStartedOtherwiseError);
    await expect(start(db, "named", undefined)).rejects.toThrow(
      /was started with subset keys 1 to 100, not all the job.s rows/,
    );
  });
});

describe("a run over a file's keys", () => {
  const db = useTestDatabase({ users: USERS, each: true });

  it("with one key, processes that row alone", async () => {
    const { run, unmatched } = await start(db, "one", { keysPath: keysFile("one.txt", "1234\n") });
    expect(unmatched).toEqual({ count: 0, examples: [] });
    await runDueJobs(db.pool);
    expect(await completedIds(db, run.id)).toEqual([1234]);
    await expectExactCounters(db, "one", 1);
  });

  it("with many keys, a CSV's first column, blanks and repeats, processes each listed row once", async () => {
    const listed = range(1, USERS).filter((id) => id % 3 === 0);
    const lines = listed.flatMap((id) => (id % 100 === 0 ? [`${id},again`, "", `"${id}",x`] : [`${id},name ${id}`]));
    const { run } = await start(db, "many", { keysPath: keysFile("many.csv", `${lines.join("\r\n")}\r\n`) });
    expect(run.settings.subset).toEqual({ keysFile: "many.csv", keys: listed.length });
    const { rows: backlog } = await db.pool.query("SELECT rows_left::int FROM batch_backlog");
    expect(backlog).toEqual([{ rows_left: listed.length }]);
    // part way through, the counters are the table's rows
    await runDueJobs(db.pool, 3);
    const { rows: midway } = await db.pool.query(
      `SELECT r.processed_records = (SELECT count(*) FROM users WHERE batch_id = r.id AND batch_status = 'completed')
              AND r.processed_records > 0 AS agree
         FROM batch_jobs r WHERE r.id = $1`,
      [run.id],
    );
    expect(midway).toEqual([{ agree: true }]);
    await runDueJobs(db.pool);
    expect(await completedIds(db, run.id)).toEqual(listed);
    await expectExactCounters(db, "many", listed.length);
  });

  it("reports the keys that name no row of the job, and runs the others", async () => {
    await db.pool.query("UPDATE users SET batch_status = 'completed' WHERE id = 5");
    const file = keysFile("some.txt", ["5", "6", "9000001", "7", "-3", "9000002"].join("\n"));
    const { run, unmatched } = await start(db, "some", { keysPath: file });
    expect(unmatched).toEqual({ count: 3, examples: ["-3", "9000001", "9000002"] });
    const { rows: events } = await db.pool.query(
      "SELECT counts->>'unmatchedKeys' AS unmatched FROM batch_events WHERE run_id = $1 AND event = 'started'",
      [run.id],
    );
    expect(events).toEqual([{ unmatched: "3" }]);
    await runDueJobs(db.pool);
    expect(await completedIds(db, run.id)).toEqual([6, 7]);
    await expectExactCounters(db, "some", 2);
  });

  it("refuses a line that holds no key, naming the file and line, and starts nothing", async () => {
    await expect(start(db, "bad", { keysPath: keysFile("bad.txt", "1\n\n2\nid\n") })).rejects.toThrow(
      'bad.txt:4: "id" is not an integer key',
    );
    const { rows } = await db.pool.query(
      "SELECT (SELECT count(*) FROM batch_jobs WHERE batch_name = 'bad')::int AS runs, (SELECT count(*) FROM batch_run_keys)::int AS keys",
    );
    expect(rows).toEqual([{ runs: 0, keys: 0 }]);
  });

  it("finds nothing to process when no listed key is the job's", async () => {
    await expect(start(db, "none", { keysPath: keysFile("none.txt", "9000001\n") })).rejects.toThrow(
      NothingToProcessError,
    );
  });
});
