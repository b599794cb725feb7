import { spawn } from "node:child_process";
import path from "node:path";
import { type Bench, DIST, mustSucceed, round, WORKER_CLI } from "./harness";

/** Milliseconds from a run's start to its first chunk starting, a worker already listening. */
export async function queueLatency(bench: Bench): Promise<number> {
  await bench.reset();
  await bench.insertUsers(10_000);
  const worker = spawn(process.execPath, [WORKER_CLI, "-C", path.join(DIST, ".graphile-worker.config.js")], {
    env: bench.env,
    stdio: "ignore",
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    mustSucceed("enqueue", await bench.seed(["enqueue", "--batch-name", "latency"]));
    for (let i = 0; i < 300; i++) {
      const { rows } = await bench.pool.query(
        `SELECT extract(epoch FROM min(c.started_at) - (SELECT at FROM batch_events e
                 WHERE e.run_id = j.id AND e.event = 'started')) * 1000 AS ms
           FROM batch_jobs j JOIN batch_chunks c ON c.run_id = j.id WHERE j.batch_name = 'latency' GROUP BY j.id`,
      );
      if (rows[0]?.ms != null) return round(Number(rows[0].ms), 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("no chunk started");
  } finally {
    worker.kill("SIGTERM");
  }
}
