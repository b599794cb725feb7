import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { column, defineJob, z } from "#pg-batch";
import { UsageError } from "../../src/base/command-error";
import { withPool } from "../../src/db/pool";
import { dryRun } from "../../src/processing/dry-run";
import { useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";

/**
 * A dry run samples the rows a run would take at evenly spaced keys, runs the job's function on
 * them and reports what would happen, without a lock held or a row, run or queue job written.
 */

const options = { sample: 200, maxAttempts: 3, concurrency: 8, timeoutMs: 30_000 };

/** Everything a dry run could change, as one text: the table, the runs, the queue. */
async function everything(pool: import("pg").Pool): Promise<string> {
  const { rows } = await pool.query(
    `SELECT (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u) AS users,
            (SELECT count(*) FROM batch_jobs) AS runs, (SELECT count(*) FROM batch_chunks) AS chunks,
            (SELECT count(*) FROM graphile_worker.jobs) AS jobs, (SELECT count(*) FROM batch_events) AS events`,
  );
  return JSON.stringify(rows[0]);
}

describe("dry run", () => {
  const db = useTestDatabase({ users: 1000 });

  beforeAll(async () => {
    // the sample's keys are 1, 6, 11, ... (1 + 5i over the span 1..1000): every fourth of them
    // (1, 21, 41, ...) has no age, the next of each four (6, 26, ...) an empty name
    await db.pool.query("UPDATE users SET age = NULL WHERE id % 20 = 1");
    await db.pool.query("UPDATE users SET name = '' WHERE id % 20 = 6");
    // as autovacuum would have: the probes walk the key's index once the planner knows the table
    await db.pool.query("ANALYZE users");
  });

  test("samples evenly spaced keys, groups the errors, writes nothing", async () => {
    const before = await everything(db.pool);
    const report = await dryRun(withPool(db.pool), usersJob, options);
    expect(await everything(db.pool)).toBe(before);

    expect(report).toMatchObject({ job: "users", sampled: 200, wouldComplete: 100, wouldFail: 100 });
    expect(report.errors).toEqual([
      { error: "age out of range: null", count: 50, keys: ["1", "21", "41", "61", "81"] },
      { error: "name is empty", count: 50, keys: ["6", "26", "46", "66", "86"] },
    ]);
    expect(report.results.map((r) => r.key)).toEqual(["11", "16", "31", "36", "51"]);
    expect(report.results[0]?.result).toEqual({ email_normalized: "user.11@example.com", segment: "young-low" });
  });

  test("samples a key range only, as a run over that range would take it", async () => {
    const report = await dryRun(withPool(db.pool), usersJob, {
      ...options,
      sample: 10,
      subset: { from: "101", to: "200" },
    });
    // probes at 101 + 10i: the ones at 101, 121, ... have no age
    expect(report).toMatchObject({ rows: "keys 101 to 200", sampled: 10, wouldComplete: 5, wouldFail: 5 });
    expect(report.errors).toEqual([
      { error: "age out of range: null", count: 5, keys: ["101", "121", "141", "161", "181"] },
    ]);
    expect(report.results.map((r) => r.key)).toEqual(["111", "131", "151", "171", "191"]);
  });

  test("samples a file's keys only, loaded for a run that is never recorded", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dry-run-keys-"));
    const file = path.join(dir, "keys.txt");
    // 101 to 200, and one key no row has
    fs.writeFileSync(file, `${Array.from({ length: 100 }, (_, i) => 101 + i).join("\n")}\n99999\n`);
    try {
      const before = await everything(db.pool);
      const report = await dryRun(withPool(db.pool), usersJob, { ...options, sample: 10, subset: { keysPath: file } });
      expect(await everything(db.pool)).toBe(before);
      const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_run_keys");
      expect(rows[0].n).toBe(0);
      expect(report).toMatchObject({ rows: "the 101 keys of keys.txt", sampled: 10, wouldComplete: 5, wouldFail: 5 });
      expect(report.errors[0]?.keys).toEqual(["101", "121", "141", "161", "181"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("takes only the rows a run would: not completed ones, nor those out of attempts", async () => {
    await db.pool.query("UPDATE users SET batch_status = 'completed' WHERE id <= 500");
    await db.pool.query("UPDATE users SET batch_status = 'failed', attempts = 3 WHERE id > 900");
    try {
      const report = await dryRun(withPool(db.pool), usersJob, { ...options, sample: 10 });
      // the open span is 501..900: probes at 501 + 40i, each a row without an age
      expect(report).toMatchObject({ sampled: 10, wouldComplete: 0, wouldFail: 10 });
      expect(report.errors).toEqual([
        { error: "age out of range: null", count: 10, keys: ["501", "541", "581", "621", "661"] },
      ]);
    } finally {
      await db.pool.query("UPDATE users SET batch_status = 'pending', attempts = 0 WHERE id <= 1000");
    }
  });

  test("reads past rows another transaction holds locked", async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM users WHERE id <= 1000 FOR UPDATE");
      const report = await dryRun(withPool(db.pool), usersJob, { ...options, sample: 20 });
      expect(report.sampled).toBe(20);
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
  });

  test("a sample larger than the open rows takes each of them once", async () => {
    const report = await dryRun(withPool(db.pool), usersJob, { ...options, sample: 5000 });
    expect(report.sampled).toBe(1000);
  });

  test("hands the records the parameters given, checked as a start checks them", async () => {
    const tagged = defineJob({
      name: "tagged",
      table: "users",
      key: "id",
      reads: {},
      writes: { segment: column.text() },
      state: usersJob.state,
      params: z.object({ tag: z.string().min(1) }),
      async process(_user, ctx) {
        return { segment: ctx.params.tag };
      },
    });
    const report = await dryRun(withPool(db.pool), tagged, { ...options, sample: 3, params: { tag: "eu" } });
    expect(report.results.map((r) => r.result)).toEqual([{ segment: "eu" }, { segment: "eu" }, { segment: "eu" }]);
    await expect(dryRun(withPool(db.pool), tagged, { ...options, params: {} })).rejects.toThrow(UsageError);
  });
});
