import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { insertUsers, useTestDatabase } from "../support/database";
import { lastJsonLine, ROOT, run, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

const JOBS_CLI = path.join(ROOT, "dist/cli/jobs.js");
const jobs = (args: string[], env: Record<string, string>) => run(process.execPath, [JOBS_CLI, ...args], env);

/** The job's arithmetic in SQL (its twin): what every open order with a quantity must hold after a run. */
const EXPECTED_TOTALS = `
  WITH priced AS (
    SELECT total_cents, tax_cents, tax_rate,
           quantity::numeric * unit_price_cents
             - round(quantity::numeric * unit_price_cents * coalesce(discount_pct, 0) / 100) AS net
      FROM orders WHERE status = 'open' AND quantity >= 1
  )
  SELECT count(*)::int AS orders,
         count(*) FILTER (WHERE tax_cents IS DISTINCT FROM round(net * tax_rate)
                             OR total_cents IS DISTINCT FROM net + round(net * tax_rate))::int AS wrong
    FROM priced`;

describe("a job of one's own: jobs/orders-reprice.ts over the example's orders table", () => {
  const db = useTestDatabase({ each: true });
  let env: Record<string, string>;
  beforeEach(async () => {
    env = { DATABASE_URL: db.url, RETRY_DELAY_S: "0", LOG_LEVEL: "warn" };
  });

  /** `seed enqueue --job` and `jobs check` exit 1 with `lines` alone, and no run is created. */
  async function expectRefused(job: string, lines: string[]): Promise<void> {
    const enqueued = await seed(["enqueue", "--job", job], env);
    expect(enqueued.code).toBe(1);
    expect(enqueued.stderr.trim().split("\n")).toEqual(lines);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs");
    expect(rows[0].n).toBe(0);
    const checked = await jobs(["check", job], env);
    expect(checked.code).toBe(1);
    expect(checked.stderr.trim().split("\n")).toEqual(lines);
  }

  it("lists the jobs, and ships the very migration its generator writes", async () => {
    const listed = await jobs(["list"], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^orders-reprice\s+public\.orders\s+order_id\s+5000\s/m);
    expect(listed.stdout).toMatch(/^users\s+public\.users\s+id\s+10000\s/m);
    const generated = await jobs(["migration", "orders-reprice", "--stdout"], env);
    expect(generated.code).toBe(0);
    const shipped = await fs.readFile(path.join(ROOT, "sql/migrations/013_job_orders_reprice.sql"), "utf8");
    expect(generated.stdout).toBe(shipped);
    // writing it again writes nothing: the shipped migration holds it
    const again = await jobs(["migration", "orders-reprice"], env);
    expect(again.code).toBe(0);
    expect(lastJsonLine(again.stdout)).toEqual({ upToDate: "sql/migrations/013_job_orders_reprice.sql" });
  });

  it("reprices every open order once, fails its poison rows after their attempts, and reports once", async () => {
    const seeded = await seed(["orders", "--rows", "12000", "--seed", "7"], env);
    expect(seeded.code).toBe(0);
    const { open } = lastJsonLine(seeded.stdout) as { open: number };
    await insertUsers(db.pool, 500);

    const enqueued = await seed(["enqueue", "--job", "orders-reprice"], env);
    expect(enqueued.code).toBe(0);
    expect(lastJsonLine(enqueued.stdout)).toMatchObject({
      batch: "orders-reprice-batch",
      job: "orders-reprice",
      status: "running",
      rows: open,
      chunks: 2,
    });
    // a run of another job may be active at the same time: one active run per job
    const users = await seed(["enqueue"], env);
    expect(users.code).toBe(0);

    const worker = startWorker([], env);
    try {
      await waitFor(
        "both runs to end",
        async () => {
          const runs = await Promise.all(
            ["orders-reprice-batch", "users-batch"].map((name) => runByName(db.pool, name)),
          );
          return runs.every((r) => r.status === "completed") && runs;
        },
        90_000,
      );
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }

    const { rows: totals } = await db.pool.query(EXPECTED_TOTALS);
    const { rows: states } = await db.pool.query(
      `SELECT status = 'open' AS open, quantity >= 1 AS has_quantity, reprice_status AS state,
              reprice_attempts AS attempts, count(*)::int AS n, min(reprice_error) AS error
         FROM orders GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
    );
    const poison = states.find((s) => s.open && !s.has_quantity);
    const repriced = states.find((s) => s.open && s.has_quantity);
    expect(totals[0]).toEqual({ orders: repriced?.n, wrong: 0 });
    expect(repriced).toMatchObject({ state: "completed", attempts: 1 });
    // the job's default of 2 attempts: a first round, then one retry round
    expect(poison).toMatchObject({ state: "failed", attempts: 2, error: "quantity must be at least 1, got 0" });
    // shipped and cancelled orders are not the job's: untouched
    expect(states.filter((s) => !s.open).every((s) => s.state === "pending" && s.attempts === 0)).toBe(true);

    const run = await runByName(db.pool, "orders-reprice-batch");
    expect(run).toMatchObject({
      total_records: open,
      processed_records: repriced?.n,
      failed_records: poison?.n,
      round: 1,
    });
    const { rows: reports } = await db.pool.query("SELECT * FROM order_reprice_reports");
    expect(reports).toEqual([
      expect.objectContaining({ run_id: run.id, status: "completed", orders_repriced: String(repriced?.n) }),
    ]);
    const { rows: plan } = await db.pool.query("SELECT result FROM batch_steps WHERE run_id = $1 AND step = 'plan'", [
      run.id,
    ]);
    expect(plan[0].result.beforeRun).toEqual({ openOrders: open });
    const { rows: events } = await db.pool.query(
      "SELECT count(*)::int AS n FROM batch_events WHERE run_id = $1 AND event = 'after-run'",
      [run.id],
    );
    expect(events[0].n).toBe(1);
    // the users job ran over its own table alongside
    const { rows: userStates } = await db.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'completed'",
    );
    expect(userStates[0].n).toBe(500);
  });

  it("refuses, at enqueue and at worker start, a job that does not fit its table: one line per mismatch", async () => {
    await seed(["orders", "--rows", "100"], env);
    await db.pool.query("ALTER TABLE orders ALTER COLUMN quantity TYPE numeric, DROP COLUMN reprice_error");
    const lines = [
      "error: job orders-reprice: public.orders.quantity is numeric, the job reads it as column.integer() (fits int2, int4)",
      "error: job orders-reprice: public.orders lacks the state column(s) reprice_error: " +
        "add them with the migration `npm run jobs -- migration orders-reprice` writes",
    ];

    await expectRefused("orders-reprice", lines);

    const worker = await startWorker(["--once"], env).exited;
    expect(worker.code).not.toBe(0);
    expect(worker.stderr.trim().split("\n")).toEqual(lines);
  });

  it("refuses a `where` value its column cannot hold, naming it, before any run starts", async () => {
    await db.pool.query(
      "ALTER TABLE orders DROP CONSTRAINT orders_status_check, ALTER COLUMN status TYPE integer USING 0",
    );
    const lines = [
      'error: job orders-reprice: where value "open" for public.orders.status (int4): ' +
        'invalid input syntax for type integer: "open"',
    ];

    await expectRefused("orders-reprice", lines);
  });

  it("refuses a touch column that holds no time: the users job's updated_at made text", async () => {
    await insertUsers(db.pool, 10);
    await db.pool.query("ALTER TABLE users ALTER COLUMN updated_at TYPE text");
    await expectRefused("users", [
      "error: job users: touch column public.users.updated_at is text, not timestamptz or timestamp",
    ]);
  });

  it("takes its jobs from JOBS_DIR when set, and refuses one that is no directory", async () => {
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), "no-jobs-"));
    try {
      const unknown = await seed(["enqueue", "--job", "users"], { ...env, JOBS_DIR: empty });
      expect(unknown.code).toBe(1);
      expect(unknown.stderr.trim()).toBe(`error: no job named "users" in ${empty} (this deployment has: none)`);
    } finally {
      await fs.rm(empty, { recursive: true });
    }
    const missing = await seed(["enqueue"], { ...env, JOBS_DIR: "/no/such/dir" });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('configuration error: JOBS_DIR "/no/such/dir" is not a directory');
  });

  it("names an unknown job with the ones there are", async () => {
    const result = await seed(["enqueue", "--job", "invoices"], env);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      'error: no job named "invoices" in jobs/ (this deployment has: orders-reprice, users)',
    );
  });

  it("lets the worker role at the job's columns and no others", async () => {
    expect((await seed(["roles"], env)).code).toBe(0);
    const { rows } = await db.pool.query(
      `SELECT has_column_privilege('batch_worker', 'orders', 'quantity', 'SELECT') AS reads,
              has_column_privilege('batch_worker', 'orders', 'total_cents', 'UPDATE') AS writes,
              has_column_privilege('batch_worker', 'orders', 'reprice_status', 'UPDATE') AS state,
              has_column_privilege('batch_worker', 'orders', 'customer_id', 'SELECT') AS other,
              has_column_privilege('batch_worker', 'orders', 'quantity', 'UPDATE') AS writes_read`,
    );
    expect(rows[0]).toEqual({ reads: true, writes: true, state: true, other: false, writes_read: false });
  });
});
