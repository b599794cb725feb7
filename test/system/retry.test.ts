import os from "node:os";
import { statusCounts, useTestDatabase } from "../support/database";
import { batch, seed, startWorker, status } from "../support/processes";
import { runByName } from "../support/runs";

/**
 * `batch retry` end to end: a run whose function fails some rows (their salary missing) ends
 * with them failed; the rows are fixed, `batch retry` starts a round over them, and a real
 * worker completes it; the counters, the history and the refusals are read as a user would.
 */

const ROWS = 200;
const ENV = { CHUNK_SIZE: "100", MAX_ATTEMPTS: "2", RETRY_DELAY_S: "0" };

describe("batch retry", () => {
  const db = useTestDatabase({ users: ROWS });
  beforeAll(async () => {
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 10 = 0");
  });

  const env = () => ({ DATABASE_URL: db.url, ...ENV });
  const worker = async () => expect((await startWorker(["--once"], env()).exited).code).toBe(0);
  const retry = async (run = "nightly") => {
    const result = await batch(["retry", run], env());
    return { ...result, json: result.code === 0 ? JSON.parse(result.stdout) : undefined };
  };
  const books = async () => {
    const { status, round, total_records, processed_records, failed_records, retryable_records } = await runByName(
      db.pool,
      "nightly",
    );
    return { status, round, total_records, processed_records, failed_records, retryable_records };
  };

  it("takes up the rows a run failed once they are fixed, and a real worker completes them", async () => {
    expect((await seed(["enqueue", "--batch-name", "nightly"], env())).code).toBe(0);
    await worker();
    const ended = { status: "completed", round: 1, total_records: ROWS, processed_records: 180 };
    expect(await books()).toEqual({ ...ended, failed_records: 20, retryable_records: 0 });

    await db.pool.query("UPDATE users SET salary = 50000 WHERE salary IS NULL");
    const started = await retry();
    expect(started.json).toMatchObject({ batch: "nightly", status: "running", round: 2, rows: 20, changed: true });
    expect((await retry()).json).toMatchObject({ status: "running", round: 2, rows: 20, changed: false });
    expect(await books()).toEqual({ ...ended, status: "running", round: 2, failed_records: 0, retryable_records: 20 });
    expect((await status(["nightly"], env())).stdout).toContain("running (round 2)");

    await worker();
    expect(await books()).toEqual({
      ...ended,
      round: 2,
      processed_records: ROWS,
      failed_records: 0,
      retryable_records: 0,
    });
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const history = JSON.parse((await batch(["history", "nightly", "--json"], env())).stdout);
    const retried = history.events.filter((event: { event: string }) => event.event === "retried");
    expect(retried).toEqual([
      expect.objectContaining({
        actor: `${os.userInfo().username}@${os.hostname()}`,
        round: 2,
        counts: expect.objectContaining({ rows: 20, chunks: 1 }),
      }),
    ]);
  });

  it("refuses, in one line, a run with no failed rows, one it does not know, and no run at all", async () => {
    const none = await retry();
    expect([none.code, none.stderr.trim()]).toEqual([1, 'error: batch run "nightly" has no failed rows to retry']);
    const unknown = await retry("no-such-run");
    expect([unknown.code, unknown.stderr.trim()]).toEqual([
      1,
      'error: no batch run is named or numbered "no-such-run"',
    ]);
    expect((await batch(["retry"], env())).code).toBe(2);
    expect((await books()).status).toBe("completed");
  });
});
