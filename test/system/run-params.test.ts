import { type Dashboard, startDashboard } from "../support/dashboard";
import { createMigratedDatabase, type TestDatabase, useTestDatabase } from "../support/database";
import { lastJsonLine, seed, startWorker, status } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/** Open orders with a quantity whose total is not the job's arithmetic with every unit price raised 10%. */
const WRONG_TOTALS = `
  WITH priced AS (
    SELECT total_cents, tax_rate, round(quantity::numeric * unit_price_cents * 110 / 100) AS gross, discount_pct
      FROM orders WHERE status = 'open' AND quantity >= 1
  ), net AS (
    SELECT total_cents, tax_rate, gross - round(gross * coalesce(discount_pct, 0) / 100) AS net FROM priced
  )
  SELECT count(*)::int AS orders,
         count(*) FILTER (WHERE total_cents IS DISTINCT FROM net + round(net * tax_rate))::int AS wrong
    FROM net`;

describe("a run's parameters from the command line: orders-reprice --param priceChangePct=10", () => {
  const db = useTestDatabase();
  let env: Record<string, string>;
  beforeAll(async () => {
    env = { DATABASE_URL: db.url, RETRY_DELAY_S: "0", MAX_ATTEMPTS: "1", LOG_LEVEL: "warn" };
    expect((await seed(["orders", "--rows", "1500", "--seed", "3"], env)).code).toBe(0);
  });

  it("refuses bad parameters with a usage error, a line a problem, and starts nothing", async () => {
    const refused = await seed(
      ["enqueue", "--job", "orders-reprice", "--param", "priceChangePct=500", "--param", "region=eu"],
      env,
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toEqual([
      "error: region: not a parameter of job orders-reprice (its parameters: priceChangePct)",
      "error: priceChangePct: Too big: expected number to be <=100",
    ]);
    const json = await seed(["enqueue", "--job", "orders-reprice", "--params-json", "[1]"], env);
    expect(json.code).toBe(2);
    expect(json.stderr.trim()).toBe(`error: --params-json must be a JSON object, such as '{"region":"eu"}'`);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs WHERE kind = 'process'")).rows[0].n).toBe(0);
  });

  it("prices every open order with the parameter on a real worker, and status shows it", async () => {
    const enqueued = await seed(["enqueue", "--job", "orders-reprice", "--param", "priceChangePct=10"], env);
    expect(enqueued.code).toBe(0);
    expect(lastJsonLine(enqueued.stdout)).toMatchObject({
      batch: "orders-reprice-batch",
      created: true,
      params: { priceChangePct: 10 },
    });
    const worker = startWorker([], env);
    try {
      await waitFor("the run to end", async () => {
        const run = await runByName(db.pool, "orders-reprice-batch");
        return run.status === "completed" && run;
      });
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    const { rows } = await db.pool.query(WRONG_TOTALS);
    expect(rows[0].orders).toBeGreaterThan(0);
    expect(rows[0].wrong).toBe(0);

    const text = await status(["orders-reprice-batch"], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("\nparams: priceChangePct=10\n");
    const json = await status(["orders-reprice-batch", "--json"], env);
    expect(lastJsonLine(json.stdout)).toMatchObject({ status: "completed", params: { priceChangePct: 10 } });

    // the same parameters name the same run; others are refused, naming the difference
    const again = await seed(["enqueue", "--job", "orders-reprice", "--params-json", '{"priceChangePct":10}'], env);
    expect(lastJsonLine(again.stdout)).toMatchObject({ created: false, status: "completed" });
    const other = await seed(["enqueue", "--job", "orders-reprice", "--param", "priceChangePct=5"], env);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("was started with priceChangePct=10, not 5");
  });
});

describe("a run's parameters from the dashboard: POST /api/runs", () => {
  const TOKEN = "a-token-to-start-runs-0123456789";
  let db: TestDatabase;
  let dashboard: Dashboard;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    const env = { DATABASE_URL: db.url, LOG_LEVEL: "warn" };
    expect((await seed(["orders", "--rows", "300", "--seed", "3"], env)).code).toBe(0);
    dashboard = await startDashboard({ ...env, DASHBOARD_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await dashboard?.stop();
    await db?.drop();
  });

  async function start(body: unknown, token?: string): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${dashboard.url}/api/runs`, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  }
  const runs = async () =>
    (await db.pool.query("SELECT batch_name, config -> 'params' AS params FROM batch_jobs WHERE kind = 'process'"))
      .rows;

  it("lists each job's parameters with their types from its schema", async () => {
    const response = await fetch(`${dashboard.url}/api/jobs`);
    const { jobs } = (await response.json()) as { jobs: { name: string; params: unknown[] }[] };
    expect(jobs.find((job) => job.name === "orders-reprice")?.params).toEqual([
      {
        name: "priceChangePct",
        type: "integer",
        required: false,
        default: 0,
        description: "percent added to every unit price before the total (-90 to 100)",
      },
    ]);
    expect(jobs.find((job) => job.name === "users")?.params).toEqual([]);
  });

  it("refuses a start without the token, or with bad parameters, a problem each; starts nothing", async () => {
    const asked = { job: "orders-reprice", params: { priceChangePct: 10 } };
    expect((await start(asked)).status).toBe(403);
    expect((await start(asked, "not-the-token-0123456789")).status).toBe(403);
    const bad = await start({ job: "orders-reprice", params: { priceChangePct: 1.5, region: "eu" } }, TOKEN);
    expect(bad).toEqual({
      status: 400,
      body: {
        error: expect.any(String),
        problems: [
          "region: not a parameter of job orders-reprice (its parameters: priceChangePct)",
          "priceChangePct: Invalid input: expected int, received number",
        ],
      },
    });
    expect((await start({ job: "nope" }, TOKEN)).status).toBe(404);
    expect(await runs()).toEqual([]);
  });

  it("starts a run with its parameters with the token, and returns it unchanged when asked again", async () => {
    const asked = { job: "orders-reprice", name: "up10", params: { priceChangePct: 10 } };
    const first = await start(asked, TOKEN);
    expect(first).toMatchObject({ status: 201, body: { batch: "up10", created: true, status: "running" } });
    expect(await start(asked, TOKEN)).toMatchObject({ status: 200, body: { run: first.body.run, created: false } });
    const other = await start({ ...asked, params: { priceChangePct: 5 } }, TOKEN);
    expect(other.status).toBe(409);
    expect(other.body.error).toContain("was started with priceChangePct=10, not 5");
    expect(await runs()).toEqual([{ batch_name: "up10", params: { priceChangePct: 10 } }]);
    const page = await fetch(`${dashboard.url}/api/runs/${first.body.run}`);
    expect(((await page.json()) as { run: { params: unknown } }).run.params).toEqual({ priceChangePct: 10 });
  });
});
