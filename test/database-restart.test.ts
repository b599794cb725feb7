import type pg from "pg";
import { migrate } from "../src/db/migrate";
import { createPool } from "../src/db/pool";
import { insertUsers, quietLogger, statusCounts } from "./support/database";
import { type PrivateServer, startPrivateServer } from "./support/private-server";
import { seed, startWorker } from "./support/processes";
import { lockedJobs, runByName, tally, waitFor } from "./support/runs";

const ROWS = 4000;

describe("the database restarting in the middle of a run", () => {
  // a server of this test's own, since it is restarted
  let server: PrivateServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    server = await startPrivateServer();
    pool = createPool({ url: server.url, max: 4, appName: "restart-test", logger: quietLogger });
    await migrate(pool, quietLogger);
    await insertUsers(pool, ROWS);
  });
  afterAll(async () => {
    await pool.end();
    await server.stop();
  });

  it("is ridden out: workers reconnect and the run completes, no outcome lost or doubled", async () => {
    const env = {
      DATABASE_URL: server.url,
      CLAIM_SIZE: "500",
      WORKERS: "2",
      ROW_CONCURRENCY: "4",
      PROCESS_DELAY_MS: "5",
      WORKER_DEAD_AFTER_S: "5",
    };
    expect((await seed(["enqueue", "--batch-name", "weathered"], env)).code).toBe(0);
    const worker = startWorker([], env);
    try {
      await waitFor("rows to complete", async () => (await runByName(pool, "weathered")).processed_records >= 500);
      await server.restart();
      await waitFor(
        "the run to complete",
        async () => (await runByName(pool, "weathered").catch(() => undefined))?.status === "completed",
        120_000,
      );
      expect(await statusCounts(pool)).toEqual({ completed: ROWS });
      const { rows } = await pool.query("SELECT DISTINCT attempts FROM users");
      expect(rows).toEqual([{ attempts: 1 }]);
      const counts = await tally(pool, "weathered", 3);
      expect(counts.run.processed_records).toBe(ROWS);
      expect(await lockedJobs(pool)).toBe(0);
      expect(worker.child.exitCode).toBeNull();
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });
});
