import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createTestDatabase, insertUsers, type TestDatabase, useTestDatabase } from "../support/database";
import { seed } from "../support/processes";

async function jobCount(db: TestDatabase): Promise<number> {
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
  return rows[0].n;
}

describe("seed enqueue", () => {
  const db = useTestDatabase({ each: true });

  const enqueue = (args: string[] = [], env: Record<string, string> = {}) =>
    seed(["enqueue", ...args], { DATABASE_URL: db.url, CHUNK_SIZE: "300", ...env });

  it("splits the rows to process into id-range chunks of CHUNK_SIZE rows, one job each", async () => {
    await insertUsers(db.pool, 1000);
    const result = await enqueue(["--batch-name", "nightly"], { CHUNK_SIZE: "400" });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ batch: "nightly", created: true, chunks: 3, rows: 1000 });
    const { rows: chunks } = await db.pool.query(
      "SELECT chunk_no, first_id::int, last_id::int, planned_rows FROM batch_chunks ORDER BY chunk_no",
    );
    expect(chunks).toEqual([
      { chunk_no: 0, first_id: 1, last_id: 400, planned_rows: 400 },
      { chunk_no: 1, first_id: 401, last_id: 800, planned_rows: 400 },
      { chunk_no: 2, first_id: 801, last_id: 1000, planned_rows: 200 },
    ]);
    const { rows: jobs } = await db.pool.query("SELECT task_identifier, key FROM graphile_worker.jobs ORDER BY id");
    const runId = JSON.parse(result.stdout).run;
    expect(jobs.map((job) => `${job.task_identifier} ${job.key}`).sort()).toEqual([
      `batch_chunk batch:${runId}:0:chunk:0`,
      `batch_chunk batch:${runId}:0:chunk:1`,
      `batch_chunk batch:${runId}:0:chunk:2`,
    ]);
    // planned in the command's own transaction: no plan job left to replay the step
    const { rows: steps } = await db.pool.query("SELECT step, round FROM batch_steps");
    expect(steps).toEqual([{ step: "plan", round: 0 }]);
    const { rows: run } = await db.pool.query("SELECT status, total_records, config FROM batch_jobs");
    expect(run[0]).toMatchObject({
      status: "running",
      total_records: 1000,
      config: { chunkSize: 400, maxAttempts: 3 },
    });
  });

  it("adds nothing when the same batch is enqueued again", async () => {
    await insertUsers(db.pool, 1000);
    const first = JSON.parse((await enqueue()).stdout);
    const jobs = await jobCount(db);
    await insertUsers(db.pool, 500, 1001);
    const second = await enqueue([], { CHUNK_SIZE: "50" });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toEqual({ ...first, created: false });
    expect(await jobCount(db)).toBe(jobs);
  });

  it("refuses a name that is another job's run, naming that job, and starts nothing", async () => {
    await insertUsers(db.pool, 1000);
    const first = await enqueue(["--batch-name", "shared"]);
    expect(first.code).toBe(0);
    const jobs = await jobCount(db);
    const refused = await enqueue(["--job", "orders-reprice", "--batch-name", "shared"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trim()).toBe(
      `error: batch run "shared" (id ${JSON.parse(first.stdout).run}) is a run of job users, not orders-reprice: ` +
        "start orders-reprice under another name",
    );
    const { rows } = await db.pool.query("SELECT batch_name, job FROM batch_jobs WHERE kind = 'process'");
    expect(rows).toEqual([{ batch_name: "shared", job: "users" }]);
    expect(await jobCount(db)).toBe(jobs);
  });

  it("makes one run with one set of chunk jobs when several pods enqueue at the same moment", async () => {
    await insertUsers(db.pool, 2000);
    const results = await Promise.all(Array.from({ length: 4 }, () => enqueue(["--batch-name", "race"])));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const outputs = results.map((r) => JSON.parse(r.stdout));
    expect(outputs.filter((o) => o.created)).toHaveLength(1);
    expect(new Set(outputs.map((o) => o.run)).size).toBe(1);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_chunks");
    expect(rows[0].n).toBe(7);
    expect(await jobCount(db)).toBe(7);
  });

  it("plans only pending rows and failed rows with attempts left", async () => {
    await insertUsers(db.pool, 10);
    await db.pool.query(`
      UPDATE users SET batch_status = 'completed' WHERE id IN (1, 2);
      UPDATE users SET batch_status = 'cancelled' WHERE id = 3;
      UPDATE users SET batch_status = 'failed', attempts = 3 WHERE id = 4;
      UPDATE users SET batch_status = 'failed', attempts = 1 WHERE id = 5;`);
    const result = JSON.parse((await enqueue()).stdout);
    expect(result).toMatchObject({ chunks: 1, rows: 6 });
    const { rows } = await db.pool.query("SELECT first_id::int, last_id::int FROM batch_chunks");
    expect(rows).toEqual([{ first_id: 5, last_id: 10 }]);
  });

  it("refuses to start a run with nothing to process, so that its name can be started later", async () => {
    await insertUsers(db.pool, 10);
    await db.pool.query("UPDATE users SET batch_status = 'completed'");
    const refused = await enqueue(["--batch-name", "early"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe("error: nothing to process: no pending or retryable rows in users");
    expect(refused.stdout).toBe("");
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs");
    expect(rows[0].n).toBe(0);
    expect(await jobCount(db)).toBe(0);

    await insertUsers(db.pool, 5, 11);
    const started = await enqueue(["--batch-name", "early"]);
    expect(started.code).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({ batch: "early", created: true, status: "running", rows: 5 });
  });

  it("takes any batch name as data, never as SQL", async () => {
    await insertUsers(db.pool, 10);
    const name = `x'); DROP TABLE users; --"$(whoami)`;
    const result = await enqueue(["--batch-name", name]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ batch: name, rows: 10 });
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users");
    expect(rows[0].n).toBe(10);
  });
});

describe("seed all", () => {
  it("creates the schema, generates, imports and enqueues in one go, and changes nothing when run again", async () => {
    const db = await createTestDatabase();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "all-"));
    try {
      const args = ["all", "--rows", "1500", "--rows-per-file", "500", "--out", dir, "--batch-name", "first"];
      const env = { DATABASE_URL: db.url, CHUNK_SIZE: "700" };
      const result = await seed(args, env);
      expect(result.code).toBe(0);
      const output = JSON.parse(result.stdout);
      expect(output).toMatchObject({
        generated: { files: 3, rows: 1500 },
        imported: { imported: 3, rows: 1500 },
        enqueued: { batch: "first", created: true, chunks: 3, rows: 1500 },
      });
      const again = JSON.parse((await seed(args, env)).stdout);
      expect(again).toMatchObject({ imported: { skipped: 3, rows: 0 }, enqueued: { created: false, chunks: 3 } });
      const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users");
      expect(rows[0].n).toBe(1500);
    } finally {
      await db.drop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
