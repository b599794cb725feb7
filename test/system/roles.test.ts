import { randomBytes } from "node:crypto";
import pg from "pg";
import { readPrimaryHealth } from "../../src/health/signals";
import { startDashboard } from "../support/dashboard";
import { createMigratedDatabase, insertUsers, statusCounts, type TestDatabase } from "../support/database";
import { dropLogin, type Login, loginAs } from "../support/logins";
import { batch, MAIN, run, seed, startWorker, status } from "../support/processes";
import { runByName } from "../support/runs";

async function attempt(url: string, sql: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
    return "allowed";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end();
  }
}

describe("least privilege", () => {
  let db: TestDatabase;
  let worker: Login;
  let monitor: Login;
  let viewer: Login;
  let admin: Login;

  beforeAll(async () => {
    db = await createMigratedDatabase();
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    // twice, as a re-deploy would: nothing breaks
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    await insertUsers(db.pool, 2000);
    worker = await loginAs(db, "batch_worker");
    monitor = await loginAs(db, "batch_monitor");
    viewer = await loginAs(db, "batch_viewer");
    admin = await loginAs(db, "batch_admin");
  });
  afterAll(async () => {
    for (const login of [worker, monitor, viewer, admin]) await dropLogin(db, login);
    await db.drop();
  });

  it("lets the admin role start a run and the worker role process it", async () => {
    const env = { CHUNK_SIZE: "500", FAIL_RATE: "0.02", RETRY_DELAY_S: "0" };
    expect((await seed(["enqueue", "--batch-name", "least"], { DATABASE_URL: admin.url, ...env })).code).toBe(0);
    const result = await startWorker(["--once"], { DATABASE_URL: worker.url, ...env }).exited;
    expect(result.stderr).not.toMatch(/permission denied/);
    expect(result.code).toBe(0);
    expect((await runByName(db.pool, "least")).status).toBe("completed");
    expect(Object.keys(await statusCounts(db.pool)).sort()).toEqual(["completed", "failed"]);
    expect((await batch(["history", "least"], { DATABASE_URL: admin.url })).code).toBe(0);
  });

  it.each([
    ["DELETE FROM users", "permission denied for table users"],
    ["INSERT INTO users (name, email) VALUES ('x', 'x@example.com')", "permission denied for table users"],
    ["UPDATE users SET email = 'stolen@example.com' WHERE id = 1", "permission denied for table users"],
    ["UPDATE users SET name = 'x' WHERE id = 1", "permission denied for table users"],
    ["SELECT last_error FROM users", "permission denied for table users"],
    ["TRUNCATE batch_jobs", "permission denied for table batch_jobs"],
    ["DELETE FROM batch_jobs", "permission denied for table batch_jobs"],
    ["SELECT * FROM imported_files", "permission denied for table imported_files"],
    ["DROP TABLE users", "must be owner of table users"],
    ["CREATE TABLE mine (id int)", "permission denied for schema public"],
    ["CREATE TABLE graphile_worker.mine (id int)", "permission denied for schema graphile_worker"],
  ])("refuses the worker role: %s", async (sql, refusal) => {
    expect(await attempt(worker.url, sql)).toContain(refusal);
  });

  it("lets the worker role take a rate limit's tokens through its function only", async () => {
    expect(await attempt(worker.url, "SELECT batch_take_tokens('least', 5, 10, 10)")).toBe("allowed");
    expect(await attempt(worker.url, "UPDATE batch_rate_limits SET tokens = 1e9")).toContain(
      "permission denied for table batch_rate_limits",
    );
    expect(await attempt(monitor.url, "SELECT batch_take_tokens('least', 5, 10, 10)")).toContain(
      "permission denied for function batch_take_tokens",
    );
  });

  it("lets the worker role read the database's health, others' vacuums and standbys included", async () => {
    const client = new pg.Client({ connectionString: worker.url });
    await client.connect();
    try {
      const { rows } = await client.query("SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS stats");
      expect(rows[0].stats).toBe(true);
      expect((await readPrimaryHealth(client, ['"public"."users"'])).walBytes).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  });

  it("lets the monitoring role read the trigger's query and nothing else", async () => {
    expect(await attempt(monitor.url, "SELECT chunks_left, rows_left FROM batch_backlog")).toBe("allowed");
    for (const sql of [
      "SELECT count(*) FROM users",
      "SELECT * FROM batch_jobs",
      "SELECT * FROM batch_progress",
      "SELECT * FROM graphile_worker.jobs",
      "UPDATE batch_jobs SET status = 'paused'",
    ]) {
      expect(await attempt(monitor.url, sql)).toMatch(/permission denied/);
    }
  });

  it("makes the monitoring logins' query give up on a lock rather than hold KEDA's scaling", async () => {
    // the settings reach the logins there are when the roles are applied, as a release does
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    const keda = new pg.Client({ connectionString: monitor.url });
    await keda.connect();
    const migration = await db.pool.connect();
    try {
      expect((await keda.query("SHOW statement_timeout")).rows[0].statement_timeout).toBe("5s");
      expect((await keda.query("SHOW lock_timeout")).rows[0].lock_timeout).toBe("1s");
      // a migration altering a table the backlog reads
      await migration.query("BEGIN");
      await migration.query("LOCK TABLE batch_jobs IN ACCESS EXCLUSIVE MODE");
      await expect(keda.query("SELECT rows_left FROM batch_backlog")).rejects.toThrow(/lock timeout/);
    } finally {
      await migration.query("ROLLBACK");
      migration.release();
      await keda.end();
    }
    // other roles' logins keep the server's defaults
    expect(await attempt(worker.url, "DO $$ BEGIN ASSERT current_setting('lock_timeout') = '0'; END $$")).toBe(
      "allowed",
    );
  });

  it("lets the viewer role read what status reads, and no row of a job's table", async () => {
    const report = await status(["--json", "least"], { DATABASE_URL: viewer.url });
    expect(report.code).toBe(0);
    expect(JSON.parse(report.stdout)).toMatchObject({ name: "least", job: "users", status: "completed" });
    for (const sql of [
      "SELECT count(*) FROM users",
      "SELECT count(*) FROM orders",
      "UPDATE batch_jobs SET status = 'paused'",
      "SELECT count(*) FROM graphile_worker._private_jobs",
      "SELECT graphile_worker.add_job('batch_plan', '{}')",
    ]) {
      expect(await attempt(viewer.url, sql)).toMatch(/permission denied/);
    }
  });

  it("lets the dashboard read every page's data through a viewer login (MONITOR_DATABASE_URL)", async () => {
    const dashboard = await startDashboard({ MONITOR_DATABASE_URL: viewer.url });
    try {
      const { rows } = await db.pool.query("SELECT id FROM batch_jobs WHERE batch_name = 'least'");
      const id = rows[0].id;
      // /metrics too: the runs by status and the backlog, for Prometheus
      for (const page of [
        "/api/runs",
        `/api/runs/${id}`,
        `/api/runs/${id}/samples`,
        `/api/runs/${id}/events`,
        "/metrics",
      ]) {
        const response = await fetch(`${dashboard.url}${page}`);
        expect({ page, status: response.status }).toEqual({ page, status: 200 });
      }
    } finally {
      await dashboard.stop();
    }
  });

  it("keeps a real password out of every output, error and process title", async () => {
    const outputs: string[] = [];
    const worked = startWorker(["--once"], { DATABASE_URL: worker.url, LOG_LEVEL: "trace" });
    const cmdline = await import("node:fs/promises").then((fs) =>
      fs.readFile(`/proc/${worked.child.pid}/cmdline`, "utf8").catch(() => ""),
    );
    const finished = await worked.exited;
    outputs.push(cmdline, finished.stdout, finished.stderr);
    for (const [args, url] of [
      [["enqueue", "--batch-name", "secret"], admin.url],
      [["enqueue", "--batch-name", "denied"], worker.url],
    ] as const) {
      const result = await seed([...args], { DATABASE_URL: url, LOG_LEVEL: "trace" });
      outputs.push(result.stdout, result.stderr);
    }
    const shown = await status(["secret", "--json"], { DATABASE_URL: admin.url });
    // a login the server refuses, whatever its authentication method
    const wrong = new URL(admin.url);
    wrong.username = `nobody_${randomBytes(4).toString("hex")}`;
    const refused = await status([], { DATABASE_URL: wrong.toString() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/password authentication failed|does not exist/);
    const started = await run(process.execPath, [MAIN, "--rows", "100"], { DATABASE_URL: admin.url });
    outputs.push(shown.stdout, shown.stderr, refused.stdout, refused.stderr, started.stdout, started.stderr);
    const { rows } = await db.pool.query("SELECT string_agg(application_name, ' ') AS names FROM pg_stat_activity");
    outputs.push(rows[0].names ?? "");

    for (const secret of [worker.password, admin.password]) {
      for (const output of outputs) expect(output).not.toContain(secret);
    }
    expect(outputs.join("").length).toBeGreaterThan(1000);
  });
});
