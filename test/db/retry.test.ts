import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { listEvents } from "../../src/runs/events";
import { cancelRun, resumeRun, retryRun, SignalRefusedError } from "../../workflows/batch-control";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { insertUsers, useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { runDueJobs } from "../support/one-job";
import { runByName, tally, waitFor } from "../support/runs";

/**
 * `batch retry`: a new round over the rows an ended run failed, their attempts given back, its
 * counters moved and exact; refused for an active, cancelled or faultless run. Runs its queue
 * jobs in this process (runDueJobs), the users job failing rows by their values (a salary
 * missing), "fixed" by correcting those values.
 */

const ROWS = 100;
/** Two attempts: one retry round (retryRounds = maxAttempts - 1), no delay. */
const SETTINGS = runSettings(
  parseConfig({ CHUNK_SIZE: "25", MAX_ATTEMPTS: "2", RETRY_DELAY_S: "0", CHUNK_MAX_ATTEMPTS: "3" }),
  usersJob,
);
const TASK_ENV = { LOG_LEVEL: "silent", POD_NAME: "retry-worker" };

describe("batch retry", () => {
  const db = useTestDatabase({ each: true });
  const savedEnv = { ...process.env };
  beforeAll(() => Object.assign(process.env, TASK_ENV));
  afterAll(() => {
    process.env = savedEnv;
  });

  /** A run over ROWS users whose every tenth row has no salary, run to its end. */
  async function runWithFailures(name: string) {
    await insertUsers(db.pool, ROWS);
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 10 = 0");
    const { run } = await startRun(withPool(db.pool), usersJob, name, SETTINGS, "test");
    await planRun(withPool(db.pool), run.id, "test");
    await runDueJobs(db.pool);
    return runByName(db.pool, name);
  }

  const books = async (name: string) => {
    const counts = await tally(db.pool, name, SETTINGS.maxAttempts);
    const { status, round, total_records, processed_records, failed_records, retryable_records } = counts.run;
    return { status, round, total_records, processed_records, failed_records, retryable_records, rows: counts };
  };

  it("takes up exactly the rows the run failed, once, with fresh attempts and exact counters", async () => {
    const ended = await runWithFailures("mended");
    expect(ended).toMatchObject({ status: "completed", round: 1, processed_records: 90, failed_records: 10 });
    // another run's failed row, and a row this run failed outside the job's rows now: neither is taken up
    await db.pool.query("UPDATE users SET batch_id = NULL WHERE id = 10");

    // half the rows fixed: the job's function now takes them
    await db.pool.query("UPDATE users SET salary = 50000 WHERE id % 20 = 0");
    const both = await Promise.all([
      retryRun(withPool(db.pool), "mended", "alice@ops"),
      retryRun(withPool(db.pool), "mended", "bob@ops"),
    ]);
    expect(both.map((result) => result.changed).sort()).toEqual([false, true]);
    expect(both.map((result) => [result.run.status, result.run.round, result.rows])).toEqual([
      ["running", 2, 9],
      ["running", 2, 9],
    ]);
    const after = await books("mended");
    expect(after).toMatchObject({ status: "running", round: 2, total_records: 100, processed_records: 90 });
    expect([after.failed_records, after.retryable_records]).toEqual([1, 9]);
    expect([after.rows.failed, after.rows.retryable]).toEqual([0, 9]);
    const { rows: given } = await db.pool.query(
      "SELECT id::int, attempts FROM users WHERE batch_status = 'failed' ORDER BY id",
    );
    expect(given).toEqual(
      [10, ...Array.from({ length: 9 }, (_, i) => 20 + 10 * i)].map((id) => ({
        id,
        attempts: id === 10 ? 2 : 0,
      })),
    );

    await runDueJobs(db.pool);
    // 5 rows mended; 4 still broken fail again, are retried in a retry round of their own, and fail for good
    const final = await books("mended");
    expect(final).toMatchObject({ status: "completed", round: 3, total_records: 100, processed_records: 95 });
    expect([final.failed_records, final.retryable_records]).toEqual([5, 0]);
    expect([final.rows.completed, final.rows.failed]).toEqual([95, 4]);
    const { rows: attempts } = await db.pool.query(
      "SELECT batch_status, attempts, count(*)::int AS n FROM users WHERE id % 10 = 0 AND id <> 10 GROUP BY 1, 2 ORDER BY 1",
    );
    expect(attempts).toEqual([
      { batch_status: "completed", attempts: 1, n: 5 },
      { batch_status: "failed", attempts: 2, n: 4 },
    ]);

    const events = await withPool(db.pool)((client) => listEvents(client, ended.id));
    const retried = events.filter((event) => event.event === "retried");
    expect(retried).toHaveLength(1);
    expect(retried[0]).toMatchObject({
      step: "control",
      round: 2,
      counts: { rows: 9, failed: 1, retryable: 9, completed: 90, total: 100 },
      detail: "9 failed row(s) given their attempts again: failed 10 -> 1, retrying 0 -> 9",
    });
    expect(["alice@ops", "bob@ops"]).toContain(retried[0]?.actor);
    expect(events.filter((event) => event.event === "retry-round").map((event) => event.round)).toEqual([1, 3]);
    expect(events.filter((event) => event.event === "completed")).toHaveLength(2);
  });

  it("refuses a run still active, one with no failed rows, and a cancelled one, which resume refuses too", async () => {
    const retry = (name: string) => retryRun(withPool(db.pool), name, "test");
    await insertUsers(db.pool, ROWS);
    const { run } = await startRun(withPool(db.pool), usersJob, "clean", SETTINGS, "test");
    await planRun(withPool(db.pool), run.id, "test");
    await expect(retry("clean")).rejects.toThrow(
      new SignalRefusedError('batch run "clean" is running; a retry takes up the failed rows of a run that has ended'),
    );
    await runDueJobs(db.pool);
    await expect(retry("clean")).rejects.toThrow('batch run "clean" has no failed rows to retry');
    expect((await runByName(db.pool, "clean")).status).toBe("completed");

    await db.pool.query("UPDATE users SET batch_status = 'pending', salary = NULL WHERE id <= 30");
    const second = await startRun(withPool(db.pool), usersJob, "dropped", SETTINGS, "test");
    await planRun(withPool(db.pool), second.run.id, "test");
    await cancelRun(withPool(db.pool), "dropped", "test");
    const cancelled =
      'batch run "dropped" was cancelled, which ended it; its unprocessed rows are pending: ' +
      "start a new run to process them (seed enqueue --job users --batch-name NEW_NAME)";
    expect((await runByName(db.pool, "dropped")).status).toBe("cancelled");
    await expect(retry("dropped")).rejects.toThrow(cancelled);
    await expect(resumeRun(withPool(db.pool), "dropped", "test")).rejects.toThrow(cancelled);
  });

  it("waits for another run of the job to end", async () => {
    await runWithFailures("first");
    await insertUsers(db.pool, 10, ROWS + 1);
    const { run } = await startRun(withPool(db.pool), usersJob, "second", SETTINGS, "test");
    await expect(retryRun(withPool(db.pool), "first", "test")).rejects.toThrow(
      `batch run "second" (id ${run.id}) of job users is pending: retry "first" once it has ended`,
    );
    expect(await books("first")).toMatchObject({ status: "completed", failed_records: 10, retryable_records: 0 });
  });

  it("gives way to another run of the job started while it retries", async () => {
    await runWithFailures("first");
    const starter = await db.pool.connect();
    try {
      // a run being started, not yet committed: the retry's check does not see it, its reopening waits for it
      await starter.query("BEGIN");
      await starter.query(
        "INSERT INTO batch_jobs (batch_name, job, kind, status, config) VALUES ('second', 'users', 'process', 'pending', '{}')",
      );
      const retried = retryRun(withPool(db.pool), "first", "test").catch((error: Error) => error);
      await waitFor("the retry to wait for the start", async () => {
        const { rows } = await db.pool.query(
          "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE batch_jobs%'",
        );
        return rows.length > 0;
      });
      await starter.query("COMMIT");
      expect(await retried).toEqual(
        new SignalRefusedError('another run of job users started meanwhile: retry "first" once it has ended'),
      );
    } finally {
      starter.release();
    }
    expect(await books("first")).toMatchObject({ status: "completed", failed_records: 10, retryable_records: 0 });
    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'failed' AND attempts = 2",
    );
    expect(rows[0].n).toBe(10);
  });
});
