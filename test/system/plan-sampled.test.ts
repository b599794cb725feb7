import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { listEvents } from "../../src/runs/events";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { insertUsers, type TestDatabase, useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { startWorker, status } from "../support/processes";
import { runByName } from "../support/runs";

/** The sampled plan on a small table: a sample of about a tenth of its rows. */
const SAMPLING = { fromRows: 0, sampleRows: 5000 };
const MAX_ATTEMPTS = 3;
const CLAIMABLE = `(batch_status = 'pending' OR (batch_status = 'failed' AND attempts < ${MAX_ATTEMPTS}))`;

/**
 * 50,000 users with ids 1-30,000 and 40,001-60,000, every 7th deleted; of those left, a block and
 * every 5th already completed, some failed with attempts left, some out of attempts, some
 * cancelled. Their state before the run is kept in `before`.
 */
async function prepare(db: TestDatabase): Promise<number> {
  await insertUsers(db.pool, 30_000);
  await insertUsers(db.pool, 20_000, 40_001);
  await db.pool.query(`
    DELETE FROM users WHERE id % 7 = 0;
    UPDATE users SET batch_status = 'completed', attempts = 1, processed_at = now() - interval '1 day'
     WHERE id BETWEEN 10001 AND 20000 OR id % 5 = 0;
    UPDATE users SET batch_status = 'failed', attempts = 1 WHERE batch_status = 'pending' AND id % 11 = 0;
    UPDATE users SET batch_status = 'failed', attempts = 3 WHERE batch_status = 'pending' AND id % 13 = 0;
    UPDATE users SET batch_status = 'cancelled' WHERE batch_status = 'pending' AND id % 17 = 0;
    ANALYZE users;
    CREATE TABLE before AS SELECT id, batch_status, attempts FROM users;`);
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM users WHERE ${CLAIMABLE}`);
  return rows[0].n;
}

async function chunksOf(db: TestDatabase, runId: number) {
  const { rows } = await db.pool.query<{ chunk_no: number; first_id: number; last_id: number; planned_rows: number }>(
    `SELECT chunk_no, first_id::int, last_id::int, planned_rows FROM batch_chunks
      WHERE run_id = $1 AND round = 0 ORDER BY first_id`,
    [runId],
  );
  return rows;
}

/** Starts the run and plans it from a sample, as the plan job would on a table of millions of rows. */
async function startSampled(db: TestDatabase, name: string, env: Record<string, string>) {
  const pool = withPool(db.pool);
  const settings = runSettings(parseConfig(env), usersJob);
  const { run } = await startRun(pool, usersJob, name, settings, "test");
  const { result } = await planRun(pool, run.id, "test", { sampling: SAMPLING });
  return { runId: run.id, planned: result };
}

describe("a sampled plan", () => {
  const db = useTestDatabase({ each: true });
  let claimable: number;
  beforeEach(async () => {
    claimable = await prepare(db);
  });

  it("tiles the key's span with chunks, each claimable row in one, and the run makes every count exact", async () => {
    const env = { CHUNK_SIZE: "2000", MAX_ATTEMPTS: String(MAX_ATTEMPTS), WORKERS: "4" };
    const { runId, planned } = await startSampled(db, "sampled", env);
    const chunks = await chunksOf(db, runId);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.map((c) => c.chunk_no).sort((a, b) => a - b)).toEqual(chunks.map((_, index) => index));
    expect(chunks[0]?.first_id).toBe(1);
    expect(chunks.at(-1)?.last_id).toBe(60_000);
    for (let index = 1; index < chunks.length; index++) {
      expect(chunks[index]?.first_id).toBe((chunks[index - 1]?.last_id ?? 0) + 1);
    }
    const { rows: misplaced } = await db.pool.query(
      `SELECT count(*)::int AS n FROM users u
        WHERE ${CLAIMABLE}
          AND (SELECT count(*) FROM batch_chunks c
                WHERE c.run_id = $1 AND u.id BETWEEN c.first_id AND c.last_id) <> 1`,
      [runId],
    );
    expect(misplaced[0].n).toBe(0);

    // the plan says its rows are estimates, and the run's total is theirs
    const sum = chunks.reduce((total, chunk) => total + chunk.planned_rows, 0);
    expect(planned).toMatchObject({ chunks: chunks.length, rows: sum, samplePercent: expect.any(Number) });
    expect((await runByName(db.pool, "sampled")).total_records).toBe(sum);
    const client = await db.pool.connect();
    const event = (await listEvents(client, runId)).find((e) => e.event === "planned");
    client.release();
    expect(event?.counts).toMatchObject({ chunks: chunks.length, rows: sum, estimated: 1 });
    expect(event?.detail).toContain("block sample");

    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    const run = await runByName(db.pool, "sampled");
    expect(run).toMatchObject({ status: "completed", total_records: claimable, processed_records: claimable });
    // each claimable row processed exactly once; no other row touched
    const { rows: changes } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE b.batch_status = 'pending' OR (b.batch_status = 'failed' AND b.attempts < $2))::int
                AS claimable,
              count(*) FILTER (WHERE u.batch_status = 'completed' AND u.batch_id = $1
                                 AND u.attempts = b.attempts + 1)::int AS once,
              count(*) FILTER (WHERE u.batch_status IS DISTINCT FROM b.batch_status OR u.attempts <> b.attempts)::int
                AS changed
         FROM users u JOIN before b USING (id)`,
      [runId, MAX_ATTEMPTS],
    );
    expect(changes[0]).toEqual({ claimable, once: claimable, changed: claimable });
    // every chunk, split ones included, plans what it did
    const { rows: done } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE planned_rows <> rows_completed + rows_failed OR status <> 'done')::int AS off,
              sum(planned_rows)::int AS planned
         FROM batch_chunks WHERE run_id = $1`,
      [runId],
    );
    expect(done[0]).toEqual({ off: 0, planned: claimable });

    const report = JSON.parse((await status(["sampled", "--json"], { DATABASE_URL: db.url })).stdout);
    expect(report).toMatchObject({ total: claimable, completed: claimable, pending: 0, percentDone: 100 });
  });

  it("ends with an exact total through retry rounds", async () => {
    const env = { CHUNK_SIZE: "3000", MAX_ATTEMPTS: String(MAX_ATTEMPTS), FAIL_RATE: "0.05", RETRY_DELAY_S: "0" };
    const { runId } = await startSampled(db, "retried", env);
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    const run = await runByName(db.pool, "retried");
    expect(run.status).toBe("completed");
    expect(run.round).toBeGreaterThan(0);
    expect(run.total_records).toBe(claimable);
    expect(run.processed_records + run.failed_records).toBe(claimable);
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE u.batch_status = 'completed')::int AS completed,
              count(*) FILTER (WHERE u.batch_status = 'failed')::int AS failed
         FROM users u JOIN before b USING (id)
        WHERE u.batch_id = $1 AND (b.batch_status = 'pending' OR (b.batch_status = 'failed' AND b.attempts < $2))`,
      [runId, MAX_ATTEMPTS],
    );
    expect(rows[0]).toEqual({ completed: run.processed_records, failed: run.failed_records });
  });
});
