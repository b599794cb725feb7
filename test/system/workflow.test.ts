import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { listEvents } from "../../src/runs/events";
import { findRunByName } from "../../src/runs/runs";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { finishRound } from "../../workflows/finish-round";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { statusCounts, type TestDatabase, useTestDatabase } from "../support/database";
import { inProcessDeps } from "../support/in-process";
import { usersJob } from "../support/jobs";
import { seed, startWorker } from "../support/processes";
import { runByName, tally, waitFor } from "../support/runs";

const ROWS = 2000;

async function events(db: TestDatabase, name: string) {
  const run = await runByName(db.pool, name);
  const client = await db.pool.connect();
  try {
    return await listEvents(client, run.id);
  } finally {
    client.release();
  }
}

async function steps(db: TestDatabase, runId: number) {
  const { rows } = await db.pool.query("SELECT step, round FROM batch_steps WHERE run_id = $1 ORDER BY finished_at", [
    runId,
  ]);
  return rows.map((row) => `${row.step} ${row.round}`);
}

describe("the batch-run workflow", () => {
  const db = useTestDatabase({ users: ROWS, each: true });

  it("records every state change of a run in its history, with who and the counts", async () => {
    const env = { CHUNK_SIZE: "500", FAIL_RATE: "0.05", RETRY_DELAY_S: "0", POD_NAME: "pod-a" };
    await seed(["enqueue", "--batch-name", "told"], { DATABASE_URL: db.url, ...env, POD_NAME: "starter" });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);

    const history = await events(db, "told");
    const runEvents = history.filter((e) => e.step !== "chunk" || e.event === "round-ended").map((e) => e.event);
    expect(runEvents).toEqual([
      "started",
      "planned",
      "round-ended",
      "retry-round",
      "round-ended",
      "retry-round",
      "round-ended",
      "completed",
    ]);
    const { rows: chunks } = await db.pool.query("SELECT count(*)::int AS n FROM batch_chunks");
    expect(history.filter((e) => e.event === "chunk-done")).toHaveLength(chunks[0].n);
    expect(history[0]).toMatchObject({ actor: "starter", step: "start" });
    expect(new Set(history.filter((e) => e.step === "chunk").map((e) => e.actor))).toEqual(new Set(["pod-a"]));
    const run = await runByName(db.pool, "told");
    expect(history.at(-1)?.counts).toEqual({
      total: ROWS,
      completed: run.processed_records,
      failed: run.failed_records,
      retryable: 0,
    });
    expect(history.map((e) => e.at.getTime())).toEqual([...history.map((e) => e.at.getTime())].sort((a, b) => a - b));
  });

  it("fans in exactly once per round when many last chunks end at the same moment", async () => {
    const env = { CHUNK_SIZE: "20", FAIL_RATE: "0.1", RETRY_DELAY_S: "0", WORKERS: "4" };
    await seed(["enqueue", "--batch-name", "crowd"], { DATABASE_URL: db.url, ...env });
    const workers = Array.from({ length: 3 }, () => startWorker(["--once"], { DATABASE_URL: db.url, ...env }));
    const exits = await Promise.all(workers.map((worker) => worker.exited));
    expect(exits.map((exit) => exit.code)).toEqual([0, 0, 0]);

    const run = await runByName(db.pool, "crowd");
    expect(run.status).toBe("completed");
    const ended = (await events(db, "crowd")).filter((e) => e.event === "round-ended").map((e) => e.round);
    expect(ended).toEqual([0, 1, 2]);
    expect(await steps(db, run.id)).toEqual(["plan 0", "finish 0", "finish 1", "finish 2"]);
    const counts = await tally(db.pool, "crowd", 3);
    expect(counts.run.processed_records).toBe(counts.completed);
    expect(counts.run.failed_records).toBe(counts.failed);
  });

  it("lets exactly one of two concurrent chunk endings start the fan-in", async () => {
    const config = parseConfig({ CHUNK_SIZE: String(ROWS / 2) });
    const db1 = withPool(db.pool);
    for (let attempt = 0; attempt < 5; attempt++) {
      await db.pool.query("UPDATE users SET batch_status = 'pending', attempts = 0, processed_at = NULL");
      const { run } = await startRun(db1, usersJob, `race-${attempt}`, runSettings(config, usersJob), "test");
      await planRun(db1, run.id, "test");
      const deps = inProcessDeps(db.pool);
      const job = (chunkNo: number) => ({ key: `k${chunkNo}`, attempt: 1, maxAttempts: 5 });
      await Promise.all(
        [0, 1].map((chunkNo) => runChunkQueueJob(deps, { runId: run.id, round: 0, chunkNo }, job(chunkNo))),
      );
      const client = await db.pool.connect();
      const ended = (await listEvents(client, run.id)).filter((e) => e.event === "round-ended");
      client.release();
      expect(ended).toHaveLength(1);
      await finishRound(db1, run.id, 0, "test");
    }
  });

  it("never runs a committed step twice: a repeated finish returns what it recorded", async () => {
    const config = parseConfig({ CHUNK_SIZE: "1000", FAIL_RATE: "0.1" });
    const pool = withPool(db.pool);
    const { run } = await startRun(pool, usersJob, "memo", runSettings(config, usersJob), "test");
    await planRun(pool, run.id, "test");
    await db.pool.query("UPDATE batch_jobs SET retryable_records = 5 WHERE id = $1", [run.id]);
    // as if the first chunk had failed five rows with attempts left
    await db.pool.query("UPDATE users SET batch_status = 'failed', attempts = 1, batch_id = $1 WHERE id <= 5", [
      run.id,
    ]);
    await db.pool.query("UPDATE batch_chunks SET rows_failed = 5 WHERE run_id = $1 AND first_id <= 5", [run.id]);
    // and the round's chunks had ended
    await db.pool.query("UPDATE batch_chunks SET status = 'done' WHERE run_id = $1", [run.id]);
    const first = await finishRound(pool, run.id, 0, "worker-1");
    const again = await finishRound(pool, run.id, 0, "worker-2");
    expect(first).toMatchObject({ replayed: false, result: { next: "retry-round", round: 1, rows: 5 } });
    expect(again).toEqual({ replayed: true, result: first.result });
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_chunks WHERE round = 1");
    expect(rows[0].n).toBe(1);
    const client = await db.pool.connect();
    const retryRounds = (await listEvents(client, run.id)).filter((e) => e.event === "retry-round");
    const found = await findRunByName(client, "memo");
    client.release();
    expect(retryRounds).toHaveLength(1);
    expect(found?.round).toBe(1);
  });

  it("resumes where it stopped when a worker is killed between two steps", async () => {
    const env = { CHUNK_SIZE: "500", FAIL_RATE: "0.05", RETRY_DELAY_S: "2" };
    await seed(["enqueue", "--batch-name", "crashy"], { DATABASE_URL: db.url, ...env });
    const doomed = startWorker([], { DATABASE_URL: db.url, ...env });
    const run = await runByName(db.pool, "crashy");
    await waitFor("the first round's fan-in", async () => (await steps(db, run.id)).includes("finish 0"), 60_000);
    doomed.child.kill("SIGKILL");
    expect((await doomed.exited).signal).toBe("SIGKILL");
    expect((await runByName(db.pool, "crashy")).round).toBe(1);

    // what the dead worker held is released, as recovery from dead workers does
    await db.pool.query(
      `SELECT graphile_worker.force_unlock_workers(
         ARRAY(SELECT DISTINCT locked_by FROM graphile_worker.jobs WHERE locked_by IS NOT NULL))`,
    );
    // the next rounds wait out their delays: drain what is due until the run ends
    await waitFor("the run to complete", async () => {
      const exit = await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited;
      expect(exit.code).toBe(0);
      return (await runByName(db.pool, "crashy")).status === "completed";
    });
    expect(await steps(db, run.id)).toEqual(["plan 0", "finish 0", "finish 1", "finish 2"]);
    const counts = await tally(db.pool, "crashy", 3);
    expect(counts.run.processed_records + counts.run.failed_records).toBe(ROWS);
    expect(counts.run.processed_records).toBe(counts.completed);
    expect(counts.run.failed_records).toBe(counts.failed);
    const { rows } = await db.pool.query("SELECT max(attempts)::int AS most FROM users");
    expect(rows[0].most).toBe(3);
    expect(Object.keys(await statusCounts(db.pool)).sort()).toEqual(["completed", "failed"]);
  });
});
