import { freePort } from "../../src/base/free-port";
import { EXIT_POOL_LOST } from "../../src/worker/pool-watchdog";
import { statusCounts, useTestDatabase } from "../support/database";
import { logLines, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/**
 * A worker whose job pool stops by itself. graphile-worker stops a pool for good when it cannot
 * record a job's completion; here the database refuses completions (a trigger), and refuses
 * unlocking jobs with 57P03 ("starting up") until the test allows it, so every stage of what the
 * worker does next can be seen.
 */
describe("a worker whose job pool stops by itself", () => {
  const db = useTestDatabase({ users: 200 });
  beforeAll(async () => {
    await db.pool.query(`
      CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'completions refused by the test'; END $$;
      CREATE TRIGGER refuse_completion BEFORE DELETE ON graphile_worker._private_jobs
        FOR EACH ROW EXECUTE FUNCTION refuse_completion();
      CREATE FUNCTION refuse_unlock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.locked_by IS NOT NULL AND NEW.locked_by IS NULL THEN
          RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_unlock BEFORE UPDATE ON graphile_worker._private_jobs
        FOR EACH ROW EXECUTE FUNCTION refuse_unlock();`);
  });

  it("turns unhealthy, releases its jobs once the database lets it, and exits for a restart", async () => {
    const port = await freePort();
    const env = { DATABASE_URL: db.url, WORKERS: "1", METRICS_PORT: String(port), RECONNECT_TIMEOUT_S: "600" };
    const healthz = () =>
      fetch(`http://127.0.0.1:${port}/healthz`).then(
        (response) => response.status,
        () => undefined,
      );
    const worker = startWorker([], env);
    await waitFor("a healthy worker", async () => (await healthz()) === 200);

    // the enqueue plans the run; its first chunk runs and commits, but its job's completion is
    // refused: the pool stops
    expect((await seed(["enqueue", "--batch-name", "orphaned"], env)).code).toBe(0);
    await waitFor("the worker to report itself unhealthy", async () => (await healthz()) === 503);
    expect(worker.child.exitCode).toBeNull();
    const { rows: held } = await db.pool.query(
      "SELECT task_identifier, locked_by FROM graphile_worker.jobs WHERE locked_by IS NOT NULL",
    );
    // the chunk's job, and the jobs the pool took after it before it stopped (the fan-in)
    expect(held).toContainEqual({ task_identifier: "batch_chunk", locked_by: expect.stringMatching(/^pool-/) });
    const pool = held[0].locked_by;
    expect(held.every((job) => job.locked_by === pool)).toBe(true);

    // the database lets jobs be unlocked again: the worker releases its own and exits
    await db.pool.query("DROP TRIGGER refuse_unlock ON graphile_worker._private_jobs");
    const exit = await worker.exited;
    expect(exit.code).toBe(EXIT_POOL_LOST);
    const { rows: locked } = await db.pool.query(
      "SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE locked_by IS NOT NULL",
    );
    expect(locked[0].n).toBe(0);
    const lines = logLines(exit.stderr);
    const stopped = lines.filter((line) => String(line.msg).startsWith("the job pool stopped"));
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatchObject({ level: 50, pool });
    const released = lines.find((line) => line.msg === "released the jobs of the stopped job pool");
    expect(released?.queueJobs).toBeGreaterThanOrEqual(held.length);

    // with completions accepted again, the next worker finishes the run; the plan ran once
    await db.pool.query("DROP TRIGGER refuse_completion ON graphile_worker._private_jobs");
    const next = await startWorker(["--once"], env).exited;
    expect(next.code).toBe(0);
    expect(await runByName(db.pool, "orphaned")).toMatchObject({ status: "completed", processed_records: 200 });
    expect(await statusCounts(db.pool)).toEqual({ completed: 200 });
    const { rows: plans } = await db.pool.query("SELECT count(*)::int AS n FROM batch_steps WHERE step = 'plan'");
    expect(plans[0].n).toBe(1);
  });
});
