import { statusCounts } from "../support/database";
import { seed, startWorker } from "../support/processes";
import { lockedJobs, runByName, tally, waitFor } from "../support/runs";
import { useWorkersAndDatabase } from "../support/workers";

const ROWS = 3000;
const DEAD_AFTER_S = 3;
const SLOW = {
  CHUNK_SIZE: "500",
  WORKERS: "2",
  ROW_CONCURRENCY: "4",
  PROCESS_DELAY_MS: "10",
  WORKER_DEAD_AFTER_S: String(DEAD_AFTER_S),
};

describe("recovery from dead workers", () => {
  const { db, workers } = useWorkersAndDatabase("SIGKILL", { users: ROWS });
  beforeEach(async () => {
    expect((await seed(["enqueue", "--batch-name", "survivor"], { DATABASE_URL: db.url, ...SLOW })).code).toBe(0);
  });

  const worker = (name: string, env: Record<string, string> = {}) => {
    const started = startWorker([], { DATABASE_URL: db.url, ...SLOW, POD_NAME: name, ...env });
    workers.push(started);
    return started;
  };

  async function poolOf(pod: string): Promise<string> {
    return waitFor(`${pod} to register`, async () => {
      const { rows } = await db.pool.query("SELECT pool_id FROM worker_sessions WHERE pod = $1", [pod]);
      return rows[0]?.pool_id as string | undefined;
    });
  }

  async function jobIdsLockedBy(pool: string): Promise<string[]> {
    const { rows } = await db.pool.query("SELECT id FROM graphile_worker.jobs WHERE locked_by = $1 ORDER BY id", [
      pool,
    ]);
    return rows.map((row) => row.id);
  }

  async function jobsLockedBy(pool: string): Promise<number> {
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE locked_by = $1", [
      pool,
    ]);
    return rows[0].n;
  }

  it("takes back the chunks of a worker killed with SIGKILL within WORKER_DEAD_AFTER_S, and loses no row", async () => {
    const doomed = worker("doomed");
    const doomedPool = await poolOf("doomed");
    await waitFor("the doomed worker to hold chunks", async () => (await jobsLockedBy(doomedPool)) > 0);
    await waitFor("some rows done", async () => (await runByName(db.pool, "survivor")).processed_records > 100);
    doomed.child.kill("SIGKILL");
    expect((await doomed.exited).signal).toBe("SIGKILL");
    expect(await jobsLockedBy(doomedPool)).toBeGreaterThan(0);

    worker("rescuer");
    // released by the dead-worker check, not by graphile-worker's own lock expiry (4 hours)
    await waitFor("the dead worker's jobs to be released", async () => (await jobsLockedBy(doomedPool)) === 0);

    await waitFor("the run to complete", async () => (await runByName(db.pool, "survivor")).status === "completed");
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    const { rows } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(rows).toEqual([{ attempts: 1 }]);
    const counts = await tally(db.pool, "survivor", 3);
    expect(counts.run.processed_records).toBe(ROWS);
    const { rows: recovered } = await db.pool.query(
      "SELECT actor, detail FROM batch_events WHERE event = 'chunk-recovered'",
    );
    expect(recovered.length).toBeGreaterThan(0);
    // the dead worker by its POD_NAME, and the job pool it ran
    expect(recovered[0]).toEqual({
      actor: "rescuer",
      detail: `worker doomed (job pool ${doomedPool}) presumed dead; chunk released for another worker`,
    });
    expect(await lockedJobs(db.pool)).toBe(0);
    const { rows: sessions } = await db.pool.query("SELECT pod FROM worker_sessions");
    expect(sessions.map((s) => s.pod)).toEqual(["rescuer"]);
  });

  it("has a --once pod, started after every worker died, release their chunks before it looks for jobs", async () => {
    // one worker holds every chunk of the run, then dies: nothing is due, everything is held
    const doomed = worker("doomed", { WORKERS: "8" });
    const doomedPool = await poolOf("doomed");
    const { rows: chunks } = await db.pool.query("SELECT count(*)::int AS n FROM batch_chunks");
    await waitFor(
      "the doomed worker to hold every chunk",
      async () => (await jobsLockedBy(doomedPool)) === chunks[0].n,
    );
    doomed.child.kill("SIGKILL");
    await doomed.exited;
    await waitFor("its heartbeat to go stale", async () => {
      const { rows } = await db.pool.query(
        "SELECT last_seen < now() - make_interval(secs => $2) AS stale FROM worker_sessions WHERE pool_id = $1",
        [doomedPool, DEAD_AFTER_S],
      );
      return rows[0]?.stale === true;
    });
    // the autoscaler's trigger still sees the held work, so a pod gets started
    const { rows: backlog } = await db.pool.query("SELECT rows_left::int FROM batch_backlog");
    expect(backlog[0].rows_left).toBeGreaterThan(0);

    const pod = await startWorker(["--once"], { DATABASE_URL: db.url, ...SLOW, POD_NAME: "pod" }).exited;
    expect(pod.code).toBe(0);
    expect(await runByName(db.pool, "survivor")).toMatchObject({ status: "completed", processed_records: ROWS });
    expect(await lockedJobs(db.pool)).toBe(0);
    const { rows: after } = await db.pool.query("SELECT rows_left::int FROM batch_backlog");
    expect(after[0].rows_left).toBe(0);
  });

  it("never takes chunks from a live worker, even one that stops answering for a while", async () => {
    const frozen = worker("frozen");
    const frozenPool = await poolOf("frozen");
    await waitFor("the frozen worker to hold chunks", async () => (await jobsLockedBy(frozenPool)) > 0);
    // SIGSTOP: no heartbeat, no progress, but the process and its sessions are alive
    frozen.child.kill("SIGSTOP");
    // a job fetch the worker sent just before stopping may still land: let it
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const held = await jobIdsLockedBy(frozenPool);
    expect(held.length).toBeGreaterThan(0);
    worker("bystander");
    await poolOf("bystander");
    await new Promise((resolve) => setTimeout(resolve, DEAD_AFTER_S * 3 * 1000));
    const { rows } = await db.pool.query(
      "SELECT last_seen < now() - interval '3 seconds' AS stale FROM worker_sessions WHERE pool_id = $1",
      [frozenPool],
    );
    expect(rows[0].stale).toBe(true);
    expect(await jobIdsLockedBy(frozenPool)).toEqual(held);
    const { rows: events } = await db.pool.query(
      "SELECT count(*)::int AS n FROM batch_events WHERE event = 'chunk-recovered'",
    );
    expect(events[0].n).toBe(0);

    frozen.child.kill("SIGCONT");
    await waitFor("the run to complete", async () => (await runByName(db.pool, "survivor")).status === "completed");
    const { rows: attempts } = await db.pool.query("SELECT DISTINCT attempts FROM users");
    expect(attempts).toEqual([{ attempts: 1 }]);
  });

  it("gives a chunk whose job vanished a new job, and fails one whose job failed all its attempts", async () => {
    const run = await runByName(db.pool, "survivor");
    const key = (chunkNo: number) => `batch:${run.id}:0:chunk:${chunkNo}`;
    await db.pool.query("SELECT graphile_worker.remove_job($1)", [key(0)]);
    await db.pool.query(
      "SELECT graphile_worker.permanently_fail_jobs(ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = $1), $2)",
      [key(1), "poisoned by the test"],
    );
    worker("healer");
    await waitFor("the run to end", async () => (await runByName(db.pool, "survivor")).status === "failed");

    const { rows: chunks } = await db.pool.query(
      "SELECT chunk_no, status, last_error FROM batch_chunks WHERE run_id = $1 AND chunk_no IN (0, 1) ORDER BY chunk_no",
      [run.id],
    );
    expect(chunks).toEqual([
      { chunk_no: 0, status: "done", last_error: null },
      { chunk_no: 1, status: "failed", last_error: "poisoned by the test" },
    ]);
    const { rows: healed } = await db.pool.query(
      "SELECT event, chunk_no, actor FROM batch_events WHERE event IN ('chunk-requeued', 'chunk-failed') ORDER BY id",
    );
    expect(healed).toEqual([
      { event: "chunk-failed", chunk_no: 1, actor: "healer" },
      { event: "chunk-requeued", chunk_no: 0, actor: "healer" },
    ]);
    const { rows: ended } = await db.pool.query("SELECT error_message FROM batch_jobs WHERE id = $1", [run.id]);
    expect(ended[0].error_message).toContain("poisoned by the test");
    // the rows of the failed chunk stay pending for a later run; the rest are done
    const { rows: planned } = await db.pool.query(
      "SELECT planned_rows FROM batch_chunks WHERE run_id = $1 AND chunk_no = 1",
      [run.id],
    );
    expect(await statusCounts(db.pool)).toEqual({
      completed: ROWS - planned[0].planned_rows,
      pending: planned[0].planned_rows,
    });
  });
});
