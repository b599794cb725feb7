import { randomBytes } from "node:crypto";
import pg from "pg";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { pauseRun } from "../../workflows/batch-control";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { finishRound } from "../../workflows/finish-round";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { inProcessDeps } from "../support/in-process";
import { usersJob } from "../support/jobs";
import { type K8sObject, render } from "../support/manifests";
import { seed } from "../support/processes";

/** The KEDA trigger of the ScaledJob, as the manifests give it. */
function trigger() {
  const scaledJob = render("local").find((o) => o.kind === "ScaledJob") as K8sObject & Record<string, any>;
  const { metadata } = scaledJob.spec.triggers[0];
  const worker = scaledJob.spec.jobTargetRef.template.spec.containers[0];
  const env = (name: string) => Number(worker.env.find((e: { name: string }) => e.name === name).value);
  return {
    query: metadata.query as string,
    target: Number(metadata.targetQueryValue),
    activation: Number(metadata.activationTargetQueryValue ?? 0),
    maxReplicas: Number(
      (render("production").find((o) => o.kind === "ScaledJob") as Record<string, any>).spec.maxReplicaCount,
    ),
    // a run's chunk size is its job's (pods do not set it): the default job's
    chunkSize: usersJob.defaults.chunkSize,
    workers: env("WORKERS"),
  };
}

describe("the autoscaling trigger", () => {
  const { query, target, activation, maxReplicas, chunkSize, workers } = trigger();
  let db: TestDatabase;
  let keda: pg.Pool;
  beforeEach(async () => {
    db = await createMigratedDatabase();
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    // KEDA connects as a member of batch_monitor
    const user = `keda_${randomBytes(4).toString("hex")}`;
    await db.pool.query(`CREATE ROLE ${user} LOGIN PASSWORD 'keda-test' IN ROLE batch_monitor`);
    const url = new URL(db.url);
    url.username = user;
    url.password = "keda-test";
    keda = new pg.Pool({ connectionString: url.toString(), max: 1 });
  });
  afterEach(async () => {
    await keda.end();
    await db.drop();
  });

  /** The query exactly as the manifest has it, as KEDA runs it: one row, one number. */
  async function backlog(): Promise<number> {
    const { rows, fields } = await keda.query(query);
    expect(rows).toHaveLength(1);
    expect(fields).toHaveLength(1);
    const value = Object.values(rows[0])[0];
    expect(value).not.toBeNull();
    return Number(value);
  }

  const settings = (env: Record<string, string>) => runSettings(parseConfig(env), usersJob);

  it("counts the work a pod started now could take up: due or held chunks and steps to run, nothing else", async () => {
    const pool = withPool(db.pool);
    const faulty = inProcessDeps(db.pool, 0.1);
    const job = { key: "k", attempt: 1, maxAttempts: 5 };
    const failedRows = async (where: string) =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM users WHERE batch_status = 'failed' AND ${where}`)).rows[0]
        .n as number;
    const chunkJobs = async (runId: number, round: number) =>
      (
        await db.pool.query<{ id: string }>("SELECT id FROM graphile_worker.jobs WHERE key LIKE $1 ORDER BY key", [
          `batch:${runId}:${round}:chunk:%`,
        ])
      ).rows.map((row) => row.id);
    const openChunks = async (runId: number, round: number) =>
      (
        await db.pool.query(
          "SELECT count(*)::int AS n FROM batch_chunks WHERE run_id = $1 AND round = $2 AND status IN ('queued', 'running')",
          [runId, round],
        )
      ).rows[0].n as number;
    expect(await backlog()).toBe(0);

    await insertUsers(db.pool, 1000);
    const a = (await startRun(pool, usersJob, "a", settings({ CHUNK_SIZE: "100", MAX_ATTEMPTS: "2" }), "test")).run;
    // the plan step, before it has run: a pod has it to do
    expect(await backlog()).toBe(1);
    await planRun(pool, a.id, "test");
    const chunks = await openChunks(a.id, 0);
    expect(chunks).toBe(10);
    expect(await backlog()).toBe(chunks);

    // a chunk held by a worker (alive, or dead until a recovery releases it) still counts; one
    // whose job backs off after a failure does not, until it is due again
    const [first, second] = await chunkJobs(a.id, 0);
    await db.pool.query(
      "UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = 'pool-gone' WHERE id = $1",
      [first],
    );
    await db.pool.query("UPDATE graphile_worker._private_jobs SET run_at = now() + interval '1 hour' WHERE id = $1", [
      second,
    ]);
    expect(await backlog()).toBe(chunks - 1);
    await db.pool.query(
      "UPDATE graphile_worker._private_jobs SET locked_at = NULL, locked_by = NULL, run_at = now() WHERE id = ANY($1)",
      [[first, second]],
    );

    // two chunks done, a tenth of their rows failed with an attempt left: those wait for the retry round
    for (const chunkNo of [0, 1]) await runChunkQueueJob(faulty, { runId: a.id, round: 0, chunkNo }, job);
    expect(await failedRows("attempts = 1")).toBeGreaterThan(0);
    expect(await backlog()).toBe(chunks - 2);

    // the whole first round done: the fan-in is the work left, never 0 before it has run
    for (let chunkNo = 2; chunkNo < chunks; chunkNo++) {
      await runChunkQueueJob(faulty, { runId: a.id, round: 0, chunkNo }, job);
    }
    const retryable = await failedRows("attempts = 1");
    expect(await backlog()).toBe(1);
    expect(await openChunks(a.id, 0)).toBe(0);

    // the retry round waits for its delay: nothing is due, no pod would find a job
    await finishRound(pool, a.id, 0, "test");
    expect(await backlog()).toBe(0);
    // once due, its rows count
    await db.pool.query("UPDATE graphile_worker._private_jobs SET run_at = now() WHERE id = ANY($1)", [
      await chunkJobs(a.id, 1),
    ]);
    expect(await openChunks(a.id, 1)).toBeGreaterThan(0);
    expect(await backlog()).toBe(await openChunks(a.id, 1));

    // the retry round fails them again, on their last attempt: failed for good, no work left
    await runChunkQueueJob(faulty, { runId: a.id, round: 1, chunkNo: 0 }, job);
    expect(await failedRows("attempts = 2")).toBe(retryable);
    expect(await backlog()).toBe(1);
    await finishRound(pool, a.id, 1, "test");
    expect(await backlog()).toBe(0);

    // a second run's rows count until the run is paused
    await insertUsers(db.pool, 500, 1001);
    const b = (await startRun(pool, usersJob, "b", settings({ CHUNK_SIZE: "100", MAX_ATTEMPTS: "2" }), "test")).run;
    await planRun(pool, b.id, "test");
    expect(await backlog()).toBe(await openChunks(b.id, 0));
    expect(await openChunks(b.id, 0)).toBe(5);
    await pauseRun(pool, "b", "test");
    expect(await backlog()).toBe(0);

    // while b is active (paused included) it owns the rows: a third run is refused
    await expect(startRun(pool, usersJob, "c", settings({}), "test")).rejects.toThrow(
      'batch run "b" (id 2) of job users is paused: wait for it to end',
    );
  });

  it("makes KEDA's ScaledJob (default strategy) start the pods the backlog needs, never more, down to zero", async () => {
    const pool = withPool(db.pool);
    // a pod's share (targetQueryValue) is WORKERS chunks, whatever their size: chunks of
    // CHUNK_SIZE / 10 rows here, to keep the test small
    expect(target).toBe(workers);
    const chunkRows = chunkSize / 10;
    const share = target;
    const chunks = 60;
    const rows = chunks * chunkRows;
    await insertUsers(db.pool, rows);
    const runSettingsForTest = settings({ CHUNK_SIZE: String(chunkRows), MAX_ATTEMPTS: "2", RETRY_DELAY_S: "0" });
    const run = (await startRun(pool, usersJob, "scaled", runSettingsForTest, "test")).run;
    await planRun(pool, run.id, "test");
    const deps = inProcessDeps(db.pool, 0.01);

    type Pod = { id: number };
    let pods: Pod[] = [];
    let podsStarted = 0;
    const taken = new Set<string>();
    const polls: { backlog: number; running: number; started: number }[] = [];

    for (let poll = 0; poll < 200; poll++) {
      // KEDA's poll: query, then ScaledJob's default strategy (pkg/scaling/executor/scale_jobs.go)
      const q = await backlog();
      const running = pods.length;
      const maxScale = q > activation ? Math.ceil(Math.min(q / share, maxReplicas)) : 0;
      const started = Math.max(0, Math.min(maxScale - running, Math.ceil(q)));
      for (let i = 0; i < started; i++) pods.push({ id: ++podsStarted });
      polls.push({ backlog: q, running, started });
      // never more pods than the backlog needs, never work without a pod
      expect(pods.length).toBeLessThanOrEqual(Math.max(running, Math.ceil(q / share)));
      if (q > 0) expect(pods.length).toBeGreaterThanOrEqual(1);
      if (q === 0 && pods.length === 0) break;

      // until the next poll, each pod works through up to WORKERS chunks (--once: a pod that
      // finds none to take exits)
      const survivors: Pod[] = [];
      for (const pod of pods) {
        const { rows: due } = await db.pool.query(
          `SELECT c.round, c.chunk_no FROM batch_chunks c JOIN batch_jobs j ON j.id = c.run_id AND j.round = c.round
            WHERE c.run_id = $1 AND c.status = 'queued' ORDER BY c.chunk_no`,
          [run.id],
        );
        const mine = due.filter((c) => !taken.has(`${c.round}:${c.chunk_no}`)).slice(0, workers);
        if (mine.length === 0) continue;
        survivors.push(pod);
        for (const c of mine) {
          taken.add(`${c.round}:${c.chunk_no}`);
          await runChunkQueueJob(
            deps,
            { runId: run.id, round: c.round, chunkNo: c.chunk_no },
            { key: "k", attempt: 1, maxAttempts: 5 },
          );
        }
        // the fan-in job, when the last chunk of a round enqueued it
        const { rows: finish } = await db.pool.query(
          "SELECT key FROM graphile_worker.jobs WHERE key LIKE $1 || '%:finish' AND locked_at IS NULL",
          [`batch:${run.id}:`],
        );
        for (const { key } of finish) {
          await finishRound(pool, run.id, Number(key.split(":")[2]), "test");
          await db.pool.query("SELECT graphile_worker.remove_job($1)", [key]);
        }
      }
      pods = survivors;
    }

    const { rows: ended } = await db.pool.query("SELECT status, round FROM batch_jobs WHERE id = $1", [run.id]);
    expect(ended[0]).toEqual({ status: "completed", round: 1 });
    expect(polls.at(-1)).toEqual({ backlog: 0, running: 0, started: 0 });
    // the backlog needed every pod allowed at the start, and got them at once
    expect(polls[0]).toEqual({
      backlog: chunks,
      running: 0,
      started: Math.min(maxReplicas, Math.ceil(chunks / share)),
    });
    expect(Math.max(...polls.map((p) => p.running + p.started))).toBe(polls[0]?.started);
    // the pods outlived several polls while the backlog shrank, and none was added for it
    expect(polls.length).toBeGreaterThanOrEqual(4);
    expect(polls.slice(1).every((p) => p.started === 0 || p.running === 0)).toBe(true);
  });
});
