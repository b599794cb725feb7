import { startDashboard } from "../support/dashboard";
import { useTestDatabase } from "../support/database";
import { batch, type Running, seed, startWorker, status, terminate } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/** Rehearse first (docs/operations.md): a dry run and a canary through the CLI, with a real worker. */

const ROWS = 2000;

/** The users table as one checksum, with the count of runs and queue jobs. */
async function everything(pool: import("pg").Pool): Promise<string> {
  const { rows } = await pool.query(
    `SELECT (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u) AS users,
            (SELECT count(*) FROM batch_jobs) AS runs, (SELECT count(*) FROM graphile_worker.jobs) AS jobs`,
  );
  return JSON.stringify(rows[0]);
}

describe("seed enqueue --dry-run", () => {
  const db = useTestDatabase({ users: ROWS });

  beforeAll(async () => {
    // the sample of 100 takes keys 1, 21, 41, ...: ten of them are these
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 200 = 1");
    await db.pool.query("ANALYZE users");
  });

  it("reports what a run would do, grouped errors and results, and changes no row", async () => {
    const before = await everything(db.pool);
    const text = await seed(["enqueue", "--dry-run", "--sample", "100"], { DATABASE_URL: db.url });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("dry run of job users: 100 sampled rows of all the job's rows, nothing written");
    expect(text.stdout).toContain("would complete 90, would fail 10");
    expect(text.stdout).toMatch(/^10 +salary missing or negative: null +1 201 401 601 801$/m);

    const json = await seed(["enqueue", "--dry-run", "--sample", "100", "--json"], { DATABASE_URL: db.url });
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ job: "users", dryRun: true, sampled: 100, wouldComplete: 90, wouldFail: 10 });
    expect(report.errors).toEqual([
      { error: "salary missing or negative: null", count: 10, keys: ["1", "201", "401", "601", "801"] },
    ]);
    expect(report.results[0]).toEqual({
      key: "21",
      result: { email_normalized: "user.21@example.com", segment: "middle-low" },
    });
    expect(report.recordsPerSecond).toBeGreaterThan(0);
    expect(await everything(db.pool)).toBe(before);

    // nothing recorded: the real run starts as if there had been no dry run
    const started = await seed(["enqueue"], { DATABASE_URL: db.url });
    expect(started.code).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({ created: true, rows: ROWS });
  });

  it("runs from the dashboard's start form, with the access token only", async () => {
    const token = "a-token-of-the-operators-0123456789";
    const dashboard = await startDashboard({ DATABASE_URL: db.url, DASHBOARD_TOKEN: token });
    try {
      const dryRun = (job: string, headers: Record<string, string> = {}) =>
        fetch(`${dashboard.url}/api/dry-runs`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ job, params: {} }),
        });
      expect((await dryRun("users")).status).toBe(403);
      const before = await everything(db.pool);
      const answered = await dryRun("users", { authorization: `Bearer ${token}` });
      expect(answered.status).toBe(200);
      // the dashboard's sample is the default, 200 rows: keys 1, 11, 21, ...
      expect(await answered.json()).toMatchObject({ job: "users", sampled: 200, wouldComplete: 190, wouldFail: 10 });
      expect(await everything(db.pool)).toBe(before);
      expect((await dryRun("nobody", { authorization: `Bearer ${token}` })).status).toBe(404);

      // the start form's canary: checked, and part of what a run was started as
      const start = (canary: unknown) =>
        fetch(`${dashboard.url}/api/runs`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ job: "users", params: {}, canary }),
        });
      const refused = await start(0);
      expect([refused.status, (await refused.json()).error]).toEqual([
        400,
        "canary must be a whole number of at least 1",
      ]);
      const other = await start(50);
      expect(other.status).toBe(409);
      expect((await other.json()).error).toContain("canary=nothing, not 50");
    } finally {
      await dashboard.stop();
    }
  });
});

describe("seed enqueue --canary", () => {
  const db = useTestDatabase({ users: ROWS });
  const env = () => ({ DATABASE_URL: db.url, CHUNK_SIZE: "200", MAX_ATTEMPTS: "1" });
  let worker: Running | undefined;
  afterEach(async () => {
    if (worker) await terminate(worker, 30_000);
  });

  beforeAll(async () => {
    // every 100th row fails: 3 of the canary's 300
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 100 = 0");
  });

  const rowsByState = async () => {
    const { rows } = await db.pool.query(
      `SELECT batch_status AS status, count(*)::int AS rows, min(id)::int AS first, max(id)::int AS last
         FROM users GROUP BY 1 ORDER BY 1`,
    );
    return rows;
  };

  it("pauses after its first N rows for a person to look; the resume finishes the run", async () => {
    const started = await seed(["enqueue", "--canary", "300", "--batch-name", "careful"], env());
    expect(started.code).toBe(0);
    worker = startWorker([], env());
    await waitFor("the canary's pause", async () => (await runByName(db.pool, "careful")).status === "paused");
    expect(await rowsByState()).toEqual([
      { status: "completed", rows: 297, first: 1, last: 299 },
      { status: "failed", rows: 3, first: 100, last: 300 },
      { status: "pending", rows: ROWS - 300, first: 301, last: ROWS },
    ]);
    expect(await runByName(db.pool, "careful")).toMatchObject({ processed_records: 297, failed_records: 3 });

    const text = await status(["careful"], env());
    expect(text.stdout).toContain("paused after its canary: 300 rows, 3 failed; batch resume goes on with the rest");
    const json = JSON.parse((await status(["careful", "--json"], env())).stdout);
    expect(json.canary).toMatchObject({ rows: 300, ended: { rows: 300, failed: 3 } });

    expect((await batch(["resume", "careful"], env())).code).toBe(0);
    await waitFor("the run's end", async () => (await runByName(db.pool, "careful")).status === "completed");
    expect(await runByName(db.pool, "careful")).toMatchObject({
      total_records: ROWS,
      processed_records: ROWS - 20,
      failed_records: 20,
    });
    const history = JSON.parse((await batch(["history", "careful", "--json"], env())).stdout);
    const events = history.events.map((event: { event: string }) => event.event);
    expect(events.indexOf("canary-ended")).toBeGreaterThan(-1);
    expect(events.indexOf("resumed")).toBeGreaterThan(events.indexOf("canary-ended"));
    expect(events.at(-1)).toBe("completed");
  });
});
