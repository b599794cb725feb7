import { setTimeout as sleep } from "node:timers/promises";
import { poolSizes } from "../../src/config/config";
import { useTestDatabase } from "../support/database";
import { seed, startWorker } from "../support/processes";
import { runByName } from "../support/runs";

/** A worker process opens no more connections than the deployment's budget counts for it. */
describe("a worker's connections", () => {
  const db = useTestDatabase({ users: 4000 });

  it("stay within poolSizes(WORKERS).perWorker through a whole run", async () => {
    const env = { DATABASE_URL: db.url, WORKERS: "3", CHUNK_SIZE: "400", ROW_CONCURRENCY: "8", PROCESS_DELAY_MS: "2" };
    expect((await seed(["enqueue", "--batch-name", "budgeted"], env)).code).toBe(0);
    const worker = startWorker([], env);
    const name = db.url.slice(db.url.lastIndexOf("/") + 1);
    let most = 0;
    try {
      for (;;) {
        // every session on the test's database but the test's own pool (application_name "tests")
        const { rows } = await db.pool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'tests'",
          [name],
        );
        most = Math.max(most, rows[0].n);
        if ((await runByName(db.pool, "budgeted")).status === "completed") break;
        await sleep(20);
      }
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    // it used several (a run with three chunks at once), never more than the budget counts
    expect(most).toBeGreaterThanOrEqual(4);
    expect(most).toBeLessThanOrEqual(poolSizes(3).perWorker);
  });
});
