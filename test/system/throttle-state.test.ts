import pg from "pg";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { readRunThrottle, recordThrottle, type ThrottleReading } from "../../src/runs/throttle-state";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { dropLogin, type Login, loginAs } from "../support/logins";
import { seed, status } from "../support/processes";

const LAG: ThrottleReading = { signal: "replica_lag", figure: 12.3, threshold: 5, unit: "s" };

describe("a run's throttle", () => {
  let db: TestDatabase;
  let runId: number;
  beforeEach(async () => {
    db = await createMigratedDatabase();
    await insertUsers(db.pool, 1000);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "100" }), usersJob);
    runId = (await startRun(withPool(db.pool), usersJob, "throttled", settings, "test")).run.id;
    await planRun(withPool(db.pool), runId, "test");
  });
  afterEach(() => db.drop());

  const record = (worker: string, reading: ThrottleReading | null) =>
    recordThrottle(withPool(db.pool), runId, worker, reading);
  const throttle = () => withPool(db.pool)((client) => readRunThrottle(client, runId));
  const history = async () =>
    (
      await db.pool.query<{ event: string; actor: string; detail: string }>(
        "SELECT event, actor, detail FROM batch_events WHERE run_id = $1 AND event IN ('throttled', 'resumed') ORDER BY id",
        [runId],
      )
    ).rows;
  const backlog = async () => Number((await db.pool.query("SELECT rows_left FROM batch_backlog")).rows[0].rows_left);
  /** Ages every worker's throttle of the run by `seconds`, as if no worker refreshed it since. */
  const age = (seconds: number) =>
    db.pool.query(
      "UPDATE batch_throttles SET seen_at = seen_at - make_interval(secs => $2), since = since - make_interval(secs => $2) WHERE run_id = $1",
      [runId, seconds],
    );

  it("holds the reading, since when, and records one entry per transition of the run however many workers wait", async () => {
    expect(await throttle()).toBeNull();
    await record("pod-a", LAG);
    const first = await throttle();
    expect(first).toMatchObject({ ...LAG, workers: 1, text: "replica lag 12.3 s over 5 s" });

    // a second worker joins, the first refreshes its figure: still one throttle, since the first
    await record("pod-b", { ...LAG, figure: 9 });
    await record("pod-a", { ...LAG, figure: 14.25 });
    expect(await throttle()).toMatchObject({ figure: 14.25, workers: 2, since: first?.since });
    expect(await history()).toEqual([{ event: "throttled", actor: "pod-a", detail: "replica lag 12.3 s over 5 s" }]);

    // one resumes, the other still waits; the run resumes with the last
    await record("pod-a", null);
    expect(await throttle()).toMatchObject({ figure: 9, workers: 1, since: first?.since });
    expect(await history()).toHaveLength(1);
    await record("pod-b", null);
    expect(await throttle()).toBeNull();
    expect(await history()).toEqual([
      { event: "throttled", actor: "pod-a", detail: "replica lag 12.3 s over 5 s" },
      { event: "resumed", actor: "pod-b", detail: expect.stringMatching(/^after \d+ s$/) },
    ]);
    // a worker resuming again (it had not recorded a wait) changes nothing
    await record("pod-b", null);
    expect(await history()).toHaveLength(2);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM batch_throttles")).rows[0].n).toBe(0);
  });

  it("is over when no worker has refreshed it for 30 seconds: a worker that died does not leave the run throttled", async () => {
    await record("pod-gone", { signal: "vacuum", figure: 1, threshold: 0, unit: "", detail: "autovacuum of users" });
    expect((await throttle())?.text).toBe("vacuum: autovacuum of users");
    await age(20);
    expect(await throttle()).not.toBeNull();
    await age(11);
    expect(await throttle()).toBeNull();

    // the next worker to wait starts a new throttle; the history closes the lapsed one first
    await record("pod-new", { signal: "condition", figure: 1, threshold: 0, unit: "", detail: "nightly report" });
    const renewed = await throttle();
    expect(renewed).toMatchObject({ signal: "condition", workers: 1, text: "condition: nightly report" });
    expect(Date.now() - (renewed?.since.getTime() ?? 0)).toBeLessThan(25_000);
    expect(await history()).toEqual([
      { event: "throttled", actor: "pod-gone", detail: "vacuum: autovacuum of users" },
      { event: "resumed", actor: "pod-new", detail: expect.stringMatching(/^no worker has waited since /) },
      { event: "throttled", actor: "pod-new", detail: "condition: nightly report" },
    ]);

    // a stale worker beside a live one: the run stays throttled until the live one resumes
    await record("pod-stale", LAG);
    await db.pool.query(
      "UPDATE batch_throttles SET seen_at = seen_at - interval '1 minute' WHERE worker = 'pod-stale'",
    );
    expect(await throttle()).toMatchObject({ signal: "condition", workers: 1 });
    await record("pod-new", null);
    expect(await throttle()).toBeNull();
    expect((await history()).map((entry) => entry.event)).toEqual(["throttled", "resumed", "throttled", "resumed"]);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM batch_throttles")).rows[0].n).toBe(0);
  });

  it("counts in the autoscaler's backlog only the chunks a worker holds while the run is throttled", async () => {
    const { rows: chunks } = await db.pool.query<{ id: string; planned: number }>(
      `SELECT j.id, c.planned_rows AS planned
         FROM batch_chunks c JOIN graphile_worker.jobs j ON j.key = format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)
        WHERE c.run_id = $1 ORDER BY c.chunk_no`,
      [runId],
    );
    expect(chunks.length).toBeGreaterThan(3);
    expect(await backlog()).toBe(1000);
    const held = chunks.slice(0, 2);
    const heldRows = held.reduce((sum, chunk) => sum + chunk.planned, 0);
    await db.pool.query(
      "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'pod-a' WHERE id = ANY($1)",
      [held.map((chunk) => chunk.id)],
    );
    expect(await backlog()).toBe(1000);

    await record("pod-a", LAG);
    expect(await backlog()).toBe(heldRows);
    // through the autoscaler's own role too
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    const monitor = await loginAs(db, "batch_monitor");
    try {
      const keda = new pg.Client({ connectionString: monitor.url });
      await keda.connect();
      const { rows } = await keda.query("SELECT rows_left FROM batch_backlog").finally(() => keda.end());
      expect(Number(rows[0].rows_left)).toBe(heldRows);
    } finally {
      await dropLogin(db, monitor);
    }

    // a throttle that lapses, or one that ends, gives the autoscaler the whole run again
    await age(31);
    expect(await backlog()).toBe(1000);
    await record("pod-a", LAG);
    expect(await backlog()).toBe(heldRows);
    await record("pod-a", null);
    expect(await backlog()).toBe(1000);
  });

  it("shows in status, as text and as JSON, while the run is throttled", async () => {
    const env = { DATABASE_URL: db.url };
    await record("pod-a", LAG);
    await record("pod-b", { ...LAG, figure: 7 });
    const since = (await throttle())?.since as Date;
    const text = await status(["throttled"], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      `throttled: replica lag 7 s over 5 s since ${since.toISOString().slice(11, 19)}, 2 workers waiting`,
    );
    const report = JSON.parse((await status(["throttled", "--json"], env)).stdout);
    expect(report).toMatchObject({
      status: "running",
      throttled: true,
      throttle: { signal: "replica_lag", figure: 7, threshold: 5, unit: "s", workers: 2, since: since.toISOString() },
    });
    expect(report.throttle.text).toBe("replica lag 7 s over 5 s");
    expect((await status([], env)).stdout).toMatch(/running, throttled/);
    expect(JSON.parse((await status(["--json"], env)).stdout).runs[0]).toMatchObject({ id: runId, throttled: true });

    await record("pod-a", null);
    await record("pod-b", null);
    expect((await status(["throttled"], env)).stdout).not.toContain("throttled:");
    expect(JSON.parse((await status(["throttled", "--json"], env)).stdout)).toMatchObject({
      throttled: false,
      throttle: null,
    });
  });

  it("is recorded through the worker role", async () => {
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    const worker: Login = await loginAs(db, "batch_worker");
    const pool = new pg.Pool({ connectionString: worker.url, max: 1 });
    try {
      await recordThrottle(withPool(pool), runId, "pod-a", LAG);
      await recordThrottle(withPool(pool), runId, "pod-a", null);
    } finally {
      await pool.end();
      await dropLogin(db, worker);
    }
    expect((await history()).map((entry) => entry.event)).toEqual(["throttled", "resumed"]);
  });
});
