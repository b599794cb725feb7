import { runChaos, verifyRun } from "../../bench/chaos";
import { useTestDatabase } from "../support/database";
import { seed } from "../support/processes";

describe("chaos: workers killed and restarted at random through a run", () => {
  const db = useTestDatabase({ users: 8000 });

  it("ends with every row completed or failed once, counters equal to rows, nothing locked", async () => {
    const env = {
      CHUNK_SIZE: "300",
      WORKERS: "2",
      ROW_CONCURRENCY: "4",
      PROCESS_DELAY_MS: "10",
      FAIL_RATE: "0.03",
      MAX_ATTEMPTS: "3",
      RETRY_DELAY_S: "500ms",
      WORKER_DEAD_AFTER_S: "2",
      SHUTDOWN_GRACE_S: "5",
    };
    expect((await seed(["enqueue", "--batch-name", "chaos"], { DATABASE_URL: db.url, ...env })).code).toBe(0);
    const log: string[] = [];
    const report = await runChaos({
      pool: db.pool,
      url: db.url,
      runName: "chaos",
      workers: 3,
      killEveryMs: 1000,
      timeoutMs: 150_000,
      seed: 20261128,
      env,
      log: (line) => log.push(line),
    });
    expect(report.sigkills).toBeGreaterThanOrEqual(2);
    expect(report.sigterms).toBeGreaterThanOrEqual(2);
    expect(await verifyRun(db.pool, "chaos", 3)).toEqual([]);
    expect(report.recoveries.length).toBeGreaterThanOrEqual(1);
    for (const seconds of report.recoveries) expect(seconds).toBeLessThan(2 * 1.25 + 5);
  });
});
