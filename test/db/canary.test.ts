import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { cancelRun, resumeRun } from "../../workflows/batch-control";
import { healStrandedWork } from "../../workflows/recovery";
import { runSettings, startRun } from "../../workflows/start-run";
import { insertUsers, type TestDatabase, useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { runDueJobs } from "../support/one-job";
import { runByName } from "../support/runs";
import { checkInvariants } from "../support/workflow-invariants";

/**
 * A run with a canary works through its first N rows by key, pauses itself, and goes on with the
 * rest when resumed: its other chunks wait deferred, with no job and no backlog, until then.
 */

const ROWS = 1000;
const CANARY = 250;
const settings = (canary: number) => ({
  ...runSettings(parseConfig({ CHUNK_SIZE: "100", MAX_ATTEMPTS: "1", RETRY_DELAY_S: "0" }), usersJob),
  canary,
});

async function chunks(db: TestDatabase, run: number) {
  const { rows } = await db.pool.query<{ first: number; last: number; status: string }>(
    `SELECT first_id::int AS first, last_id::int AS last, status FROM batch_chunks
      WHERE run_id = $1 ORDER BY first_id`,
    [run],
  );
  return rows;
}

async function usersByState(db: TestDatabase): Promise<Record<string, { rows: number; last: number }>> {
  const { rows } = await db.pool.query<{ status: string; rows: number; last: number }>(
    "SELECT batch_status AS status, count(*)::int AS rows, max(id)::int AS last FROM users GROUP BY 1",
  );
  return Object.fromEntries(rows.map(({ status, ...rest }) => [status, rest]));
}

async function backlog(db: TestDatabase): Promise<number> {
  const { rows } = await db.pool.query<{ left: number }>("SELECT chunks_left::int AS left FROM batch_backlog");
  return rows[0]?.left ?? 0;
}

describe("a run with a canary", () => {
  const db = useTestDatabase({ each: true });

  beforeEach(async () => {
    // ids 1..1000; every 50th has no salary and fails: 5 of the canary's 250 rows
    await insertUsers(db.pool, ROWS);
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 50 = 0");
  });

  it("pauses after exactly its rows, and the resume finishes the run with exact counters", async () => {
    const pool = withPool(db.pool);
    const { run } = await startRun(pool, usersJob, "canary", settings(CANARY), "starter", "now");
    const planned = await chunks(db, run.id);
    // the chunk holding key 250 is cut after it; every chunk from 251 on waits
    const canaryChunks = planned.filter((c) => c.status === "queued");
    const deferred = planned.filter((c) => c.status === "deferred");
    expect(canaryChunks.length + deferred.length).toBe(planned.length);
    expect([canaryChunks[0]?.first, canaryChunks.at(-1)?.last]).toEqual([1, CANARY]);
    expect([deferred[0]?.first, deferred.at(-1)?.last]).toEqual([CANARY + 1, ROWS]);
    const { rows: counted } = await db.pool.query("SELECT chunks_total FROM batch_jobs WHERE id = $1", [run.id]);
    expect(counted[0].chunks_total).toBe(planned.length);
    expect((await runByName(db.pool, "canary")).total_records).toBe(ROWS);
    // the canary is part of what the run was started as: the same start returns it, another is refused
    expect((await startRun(pool, usersJob, "canary", settings(CANARY), "starter", "now")).created).toBe(false);
    await expect(startRun(pool, usersJob, "canary", settings(500), "starter", "now")).rejects.toThrow(
      "canary=250, not 500",
    );

    await runDueJobs(db.pool);
    expect(await runByName(db.pool, "canary")).toMatchObject({
      status: "paused",
      processed_records: 245,
      failed_records: 5,
      retryable_records: 0,
    });
    expect(await usersByState(db)).toEqual({
      completed: { rows: 245, last: 249 },
      failed: { rows: 5, last: 250 },
      pending: { rows: 750, last: 1000 },
    });
    // nothing to do and nothing to heal while it waits for a person: the deferred chunks have no job
    expect(await backlog(db)).toBe(0);
    expect(await healStrandedWork(pool, "test")).toEqual({ requeued: 0, failed: 0, steps: 0 });
    expect(await runDueJobs(db.pool)).toEqual([]);
    const { rows: ended } = await db.pool.query(
      "SELECT counts, detail FROM batch_events WHERE run_id = $1 AND event = 'canary-ended'",
      [run.id],
    );
    expect(ended).toHaveLength(1);
    expect(ended[0].counts).toMatchObject({ canaryRows: CANARY, canaryFailed: 5 });

    expect((await resumeRun(pool, "canary", "reviewer@host")).run.status).toBe("running");
    await runDueJobs(db.pool);
    expect(await runByName(db.pool, "canary")).toMatchObject({
      status: "completed",
      total_records: ROWS,
      processed_records: 980,
      failed_records: 20,
    });
    const { rows: resumed } = await db.pool.query(
      "SELECT actor, counts FROM batch_events WHERE run_id = $1 AND event = 'resumed'",
      [run.id],
    );
    expect(resumed).toEqual([
      {
        actor: "reviewer@host",
        counts: expect.objectContaining({ releasedChunks: deferred.length, enqueuedJobs: deferred.length }),
      },
    ]);
    expect(await checkInvariants(db.pool, new Map())).toEqual([]);
  });

  it("a cancel after the canary ends the run, its deferred rows left pending", async () => {
    const pool = withPool(db.pool);
    await startRun(pool, usersJob, "canary", settings(CANARY), "starter", "now");
    await runDueJobs(db.pool);
    expect((await cancelRun(pool, "canary", "reviewer")).run.status).toBe("cancelled");
    expect((await usersByState(db)).pending).toEqual({ rows: 750, last: 1000 });
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_chunks WHERE status = 'deferred'");
    expect(rows[0].n).toBe(0);
  });

  it("a canary as large as the run's rows defers nothing: the run ends without pausing", async () => {
    const pool = withPool(db.pool);
    const { run } = await startRun(pool, usersJob, "canary", settings(ROWS), "starter", "now");
    expect((await chunks(db, run.id)).every((c) => c.status === "queued")).toBe(true);
    await runDueJobs(db.pool);
    expect(await runByName(db.pool, "canary")).toMatchObject({ status: "completed", processed_records: 980 });
  });
});
