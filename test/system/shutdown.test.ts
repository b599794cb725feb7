import { statusCounts, useTestDatabase } from "../support/database";
import { logLines, type Running, seed, start, startWorker } from "../support/processes";
import { lockedJobs, runByName, tally, waitFor } from "../support/runs";

const ROWS = 4000;
const GRACE_S = 8;
/** Slow enough that the run is in the middle when the signal comes. */
const SLOW = {
  CHUNK_SIZE: "1000",
  WORKERS: "2",
  ROW_CONCURRENCY: "4",
  PROCESS_DELAY_MS: "20",
  SHUTDOWN_GRACE_S: `${GRACE_S}`,
};

describe("SIGTERM to a worker in the middle of a run", () => {
  const db = useTestDatabase({ users: ROWS, each: true });
  beforeEach(async () => {
    expect((await seed(["enqueue", "--batch-name", "interrupted"], { DATABASE_URL: db.url, ...SLOW })).code).toBe(0);
  });

  async function interruptMidRun(worker: Running, signal: () => void, afterRows = 300, ready = async () => true) {
    await waitFor(
      "rows to complete",
      async () => (await runByName(db.pool, "interrupted")).processed_records >= afterRows,
    );
    await waitFor("the worker to be where the signal must find it", ready);
    const signalled = Date.now();
    signal();
    const exit = await worker.exited;
    return { exit, seconds: (Date.now() - signalled) / 1000 };
  }

  async function expectHandedBackCleanly(stderr: string, message = "worker shutting down: chunk handed back") {
    const handedBack = logLines(stderr).filter((line) => line.msg === message);
    expect(handedBack.length).toBeGreaterThanOrEqual(1);
    expect(await lockedJobs(db.pool)).toBe(0);
    const counts = await tally(db.pool, "interrupted", 3);
    expect(counts.run.status).toBe("running");
    expect(counts.run.processed_records).toBe(counts.completed);
    expect(counts.pending).toBe(ROWS - counts.completed);
    expect(counts.pending).toBeGreaterThan(0);
    expect((await statusCounts(db.pool)).processing).toBeUndefined();

    // another worker finishes the run; no row is processed twice
    const rest = await startWorker(["--once"], { DATABASE_URL: db.url, CHUNK_SIZE: "1000" }).exited;
    expect(rest.code).toBe(0);
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const { rows } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(rows).toEqual([{ attempts: 1 }]);
    expect(await runByName(db.pool, "interrupted")).toMatchObject({ status: "completed", processed_records: ROWS });
  }

  it("graphile-worker (the pod's command) hands its chunks back and exits within SHUTDOWN_GRACE_S", async () => {
    const worker = startWorker([], { DATABASE_URL: db.url, ...SLOW });
    const { exit, seconds } = await interruptMidRun(worker, () => worker.child.kill("SIGTERM"));
    // graphile-worker ends a graceful shutdown by re-raising the signal it received
    expect(exit.signal ?? exit.code).toBe("SIGTERM");
    expect(seconds).toBeLessThan(GRACE_S);
    expect(exit.stderr).toContain("Global graceful shutdown complete");
    // it deregistered before exiting: nothing is left for the recovery to find
    const { rows: sessions } = await db.pool.query("SELECT pod FROM worker_sessions");
    expect(sessions).toEqual([]);
    await expectHandedBackCleanly(exit.stderr);
  });

  it("npx graphile-worker does the same when its process group is signalled, as a terminal or init does", async () => {
    const worker = start("npx", ["graphile-worker"], { DATABASE_URL: db.url, ...SLOW }, { detached: true });
    const group = worker.child.pid as number;
    const { seconds } = await interruptMidRun(worker, () => process.kill(-group, "SIGTERM"));
    // npx itself returns at once; wait for the worker under it to finish its shutdown
    await waitFor("the worker to exit", async () => {
      try {
        process.kill(-group, 0);
        return false;
      } catch {
        return true;
      }
    });
    expect(seconds).toBeLessThan(GRACE_S);
    expect(worker.output.stderr).toContain("Global graceful shutdown complete");
    await expectHandedBackCleanly(worker.output.stderr);
  });

  it("rolls back records still in flight when the grace runs out, and loses none", async () => {
    // records take longer than the grace leaves them: at SHUTDOWN_GRACE_S - 3 s they are abandoned.
    // A record takes 6 s. The signal comes once a slice after the first holds the rows it claimed
    // while their records run (its transaction idle, with row locks, for 0.2 to 4 s): not in the
    // few milliseconds between a slice's commit and the next one's claim, where a chunk is handed
    // back with nothing to roll back, nor as a slice's records are about to end.
    // The lock bound outlasts the records, so that their slice still holds their rows (a record
    // past the bound would be written apart, its slice committed: test/system/lock-bound.test.ts).
    const slowRecords = {
      ...SLOW,
      PROCESS_DELAY_MS: "6000",
      ROW_CONCURRENCY: "50",
      SHUTDOWN_GRACE_S: "4",
      MAX_LOCK_HOLD_S: "60",
    };
    const recordsRunning = async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS slices FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'idle in transaction' AND backend_xid IS NOT NULL
            AND state_change BETWEEN now() - interval '4 seconds' AND now() - interval '200 milliseconds'`,
      );
      return rows[0].slices > 0;
    };
    const worker = startWorker([], { DATABASE_URL: db.url, ...slowRecords });
    const { exit, seconds } = await interruptMidRun(worker, () => worker.child.kill("SIGTERM"), 50, recordsRunning);
    expect(exit.signal ?? exit.code).toBe("SIGTERM");
    expect(seconds).toBeLessThan(4);
    await expectHandedBackCleanly(exit.stderr, "shutdown grace ran out: slice rolled back, chunk handed back");
  });
});
