import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "../../src/base/free-port";
import { statusCounts, useTestDatabase } from "../support/database";
import { seed, startWorker, status } from "../support/processes";
import { runByName, waitFor } from "../support/runs";
import { checkInvariants } from "../support/workflow-invariants";

/**
 * How long a claimed row stays locked (MAX_LOCK_HOLD_S), against a real worker process and an
 * "application" on sessions of its own that updates the rows the run works through.
 */

const ROWS = 240;
const BOUND_MS = 500;
// the lock wait an application update may see: the bound, and room for a busy machine
const MARGIN_MS = 2000;

describe("bounded lock holding", () => {
  const db = useTestDatabase({ users: ROWS, each: true });

  async function enqueue(name: string, env: Record<string, string>): Promise<void> {
    const result = await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url, ...env });
    expect(result.code).toBe(0);
  }

  /** A session of its own, as the application's are. */
  async function session(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    return client;
  }

  it("keeps an application's update of a claimed row waiting at most about the bound, records running past it", async () => {
    // records of a second on average, some of several: far longer than the bound
    const env = {
      CHUNK_SIZE: "120",
      WORKERS: "2",
      ROW_CONCURRENCY: "16",
      PROCESS_DELAY_MS: "1000",
      PROCESS_DELAY_SPREAD: "exponential",
      MAX_LOCK_HOLD_S: `${BOUND_MS}ms`,
    };
    await enqueue("slow", env);
    const worker = startWorker(["--once"], { DATABASE_URL: db.url, ...env });
    let running = true;
    const waits: number[] = [];
    // each application client updates a random row, again and again
    const application = Array.from({ length: 3 }, async () => {
      const client = await session();
      try {
        await client.query(`SET lock_timeout = ${BOUND_MS + 5 * MARGIN_MS}`);
        while (running) {
          const started = performance.now();
          await client.query("UPDATE users SET age = age WHERE id = $1", [1 + Math.floor(Math.random() * ROWS)]);
          waits.push(performance.now() - started);
          await sleep(10);
        }
      } finally {
        await client.end();
      }
    });
    const finished = await worker.exited;
    running = false;
    await Promise.all(application);

    expect(finished).toMatchObject({ code: 0 });
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    expect(await runByName(db.pool, "slow")).toMatchObject({
      status: "completed",
      processed_records: ROWS,
      failed_records: 0,
      retryable_records: 0,
    });
    expect(await checkInvariants(db.pool, new Map())).toEqual([]);
    // the updates met the slices' locks (they waited for a commit), and never for long
    expect(waits.filter((ms) => ms > 100).length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...waits)).toBeLessThan(BOUND_MS + MARGIN_MS);
  });

  it("shows rows an idle-in-transaction session holds, neither completes over them nor spins, and ends once it commits", async () => {
    const application = await session();
    try {
      await application.query("BEGIN");
      await application.query("UPDATE users SET age = age WHERE id = 150");
      const { rows: me } = await application.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      const pid = me[0]?.pid;
      const env = { CHUNK_SIZE: "100", WORKERS: "2" };
      await enqueue("held", env);
      const port = await freePort();
      const worker = startWorker([], { DATABASE_URL: db.url, ...env, METRICS_PORT: String(port) });
      const metric = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        expect(text).toContain(`# TYPE ${name} `);
        return Number(new RegExp(`^${name}\\{job="users"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
      };
      try {
        const shown = await waitFor(
          "status to show the held row",
          async () => {
            const { stdout } = await status(["held"], { DATABASE_URL: db.url });
            return stdout.includes("rows held by another session") && stdout;
          },
          120_000,
        );
        expect(shown).toMatch(
          new RegExp(
            `rows held by another session: 1 row of chunk \\d+ by pid ${pid} \\(idle in transaction\\) since \\d\\d:\\d\\d:\\d\\d`,
          ),
        );
        const { stdout: json } = await status(["held", "--json"], { DATABASE_URL: db.url });
        const report = JSON.parse(json) as { rowsHeld: { rows: number; pid: number; since: string }[] };
        expect(report.rowsHeld).toEqual([expect.objectContaining({ rows: 1, pid })]);
        // the metrics say so too, while the chunk waits on the row (up to ROW_TIMEOUT_S, then again after a retry)
        await waitFor(
          "the metrics to show the held row",
          async () => (await metric("batch_rows_held_elsewhere")) === 1,
        );

        // the run waits: over a few seconds its chunk neither completes nor claims again and again
        const attempts = async () => {
          const { rows } = await db.pool.query<{ attempts: number }>(
            "SELECT sum(attempts)::int AS attempts FROM batch_chunks WHERE run_id = (SELECT id FROM batch_jobs WHERE batch_name = 'held')",
          );
          return rows[0]?.attempts ?? 0;
        };
        const before = await attempts();
        await sleep(5000);
        expect((await attempts()) - before).toBeLessThanOrEqual(1);
        expect(await runByName(db.pool, "held")).toMatchObject({ status: "running", processed_records: ROWS - 1 });
        expect(await statusCounts(db.pool)).toEqual({ completed: ROWS - 1, pending: 1 });

        await application.query("COMMIT");
        await waitFor(
          "the run to complete",
          async () => (await runByName(db.pool, "held")).status === "completed",
          120_000,
        );
        expect(await runByName(db.pool, "held")).toMatchObject({ processed_records: ROWS, failed_records: 0 });
        expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
        expect(await checkInvariants(db.pool, new Map())).toEqual([]);
        const { stdout: after } = await status(["held"], { DATABASE_URL: db.url });
        expect(after).not.toContain("held by another session");
        expect(await metric("batch_rows_held_elsewhere")).toBe(0);
        // no chunk gave up within the 5 s above, so none needed graphile-worker's retry to end
        expect(await metric("batch_held_rows_give_ups_total")).toBe(0);
      } finally {
        worker.child.kill("SIGTERM");
        await worker.exited;
      }
    } finally {
      await application.end();
    }
  });
});
