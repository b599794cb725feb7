import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { PROJECT_ROOT } from "../src/base/paths";

/**
 * The chaos run: several real worker processes work through a real batch run while they are
 * killed (SIGKILL) and stopped (SIGTERM) at random moments and replaced, as Kubernetes does to
 * pods. Afterwards the database must show every row completed or failed once, attempts within
 * bounds, counters equal to the rows, no job left locked and the workflow completed.
 *
 * Used by test/system/chaos.test.ts (small) and bench/chaos-run.ts (long, `npm run chaos`).
 */

const WORKER_BIN = path.join(PROJECT_ROOT, "node_modules/.bin/graphile-worker");

export interface ChaosOptions {
  pool: pg.Pool;
  url: string;
  runName: string;
  /** Worker processes kept running (a killed one is replaced). */
  workers: number;
  /** A kill every this many milliseconds, give or take half. */
  killEveryMs: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** Seeds the choice of victims, signals and delays, so that a run can be repeated. */
  seed: number;
  /** Environment of the workers (CHUNK_SIZE, FAIL_RATE, WORKER_DEAD_AFTER_S...). */
  env: Record<string, string>;
  log?: (line: string) => void;
}

export interface ChaosReport {
  seconds: number;
  sigkills: number;
  sigterms: number;
  restarts: number;
  /** Seconds from a SIGKILL to the release of the jobs the killed worker held. */
  recoveries: number[];
  status: string;
}

/** mulberry32: a small seeded PRNG. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Worker {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

async function scalar<T>(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<T> {
  const { rows } = await pool.query(sql, values);
  return Object.values(rows[0] ?? {})[0] as T;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { pool, log = () => undefined } = options;
  const next = random(options.seed);
  const workers: Worker[] = [];
  const pendingRecoveries: { pool: string; at: number }[] = [];
  const report: ChaosReport = { seconds: 0, sigkills: 0, sigterms: 0, restarts: 0, recoveries: [], status: "" };
  let count = 0;

  const startOne = () => {
    const name = `chaos-${++count}`;
    const child = spawn(WORKER_BIN, ["-C", "dist/.graphile-worker.config.js"], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        ...options.env,
        DATABASE_URL: options.url,
        POD_NAME: name,
        LOG_LEVEL: "warn",
        METRICS_PORT: "0",
      },
      stdio: "ignore",
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    workers.push({ name, child, exited });
    log(`started ${name}`);
  };

  const runStatus = () =>
    scalar<string>(pool, "SELECT status FROM batch_jobs WHERE batch_name = $1", [options.runName]);

  const started = Date.now();
  for (let i = 0; i < options.workers; i++) startOne();
  let nextKill = Date.now() + options.killEveryMs * (0.5 + next());
  for (;;) {
    report.status = await runStatus();
    if (report.status === "completed") break;
    if (Date.now() - started > options.timeoutMs) throw new Error(`chaos run still ${report.status} after the timeout`);
    for (const pending of [...pendingRecoveries]) {
      const held = await scalar<number>(pool, "SELECT count(*)::int FROM graphile_worker.jobs WHERE locked_by = $1", [
        pending.pool,
      ]);
      if (held === 0) {
        report.recoveries.push((Date.now() - pending.at) / 1000);
        pendingRecoveries.splice(pendingRecoveries.indexOf(pending), 1);
      }
    }
    if (Date.now() >= nextKill && workers.length > 0) {
      const victim = workers.splice(Math.floor(next() * workers.length), 1)[0] as Worker;
      const signal = next() < 0.5 ? "SIGKILL" : "SIGTERM";
      const { rows: held } = await pool.query<{ pool: string }>(
        `SELECT DISTINCT s.pool_id AS pool FROM worker_sessions s
           JOIN graphile_worker.jobs j ON j.locked_by = s.pool_id WHERE s.pod = $1`,
        [victim.name],
      );
      victim.child.kill(signal);
      if (signal === "SIGKILL") {
        report.sigkills++;
        // recovery is timed for a worker that held jobs when it died
        for (const { pool: victimPool } of held) pendingRecoveries.push({ pool: victimPool, at: Date.now() });
      } else {
        report.sigterms++;
      }
      log(`${signal} ${victim.name}`);
      // its replacement comes a moment later, as a rescheduled pod does
      void sleep(200 + next() * 800).then(() => {
        startOne();
        report.restarts++;
      });
      nextKill = Date.now() + options.killEveryMs * (0.5 + next());
    }
    await sleep(100);
  }
  // what a killed worker held must be released even after the run has ended
  while (pendingRecoveries.length > 0 && Date.now() - started < options.timeoutMs) {
    const pending = pendingRecoveries[0] as { pool: string; at: number };
    const held = await scalar<number>(pool, "SELECT count(*)::int FROM graphile_worker.jobs WHERE locked_by = $1", [
      pending.pool,
    ]);
    if (held === 0) report.recoveries.push((Date.now() - pending.at) / 1000);
    if (held === 0) pendingRecoveries.shift();
    else await sleep(100);
  }
  report.seconds = (Date.now() - started) / 1000;
  await sleep(1000);
  for (const worker of workers) worker.child.kill("SIGTERM");
  await Promise.all(workers.map((worker) => worker.exited));
  return report;
}

/** What must hold after any run, chaos or not; returns what does not. */
export async function verifyRun(pool: pg.Pool, runName: string, maxAttempts: number): Promise<string[]> {
  const problems: string[] = [];
  const { rows } = await pool.query(
    `SELECT j.status, j.total_records AS total, j.processed_records AS completed, j.failed_records AS failed,
            j.retryable_records AS retryable,
            (SELECT count(*) FROM users u WHERE u.batch_id = j.id AND u.batch_status = 'completed')::int AS completed_rows,
            (SELECT count(*) FROM users u WHERE u.batch_id = j.id AND u.batch_status = 'failed')::int AS failed_rows,
            (SELECT count(*) FROM users u WHERE u.batch_status NOT IN ('completed', 'failed'))::int AS unfinished_rows,
            (SELECT count(*) FROM users u WHERE u.attempts < 1 OR u.attempts > $2)::int AS attempts_out_of_bounds,
            (SELECT count(*) FROM users u WHERE u.batch_status = 'failed' AND u.attempts <> $2)::int AS failed_early,
            (SELECT count(*) FROM graphile_worker.jobs)::int AS jobs_left,
            (SELECT count(*) FROM graphile_worker.jobs WHERE locked_at IS NOT NULL)::int AS locked_jobs,
            (SELECT count(*) FROM batch_steps s WHERE s.run_id = j.id)::int AS steps,
            j.round + 2 AS expected_steps
       FROM batch_jobs j WHERE j.batch_name = $1`,
    [runName, maxAttempts],
  );
  const r = rows[0];
  if (!r) return [`no run named ${runName}`];
  const expect = (ok: boolean, problem: string) => ok || problems.push(problem);
  expect(r.status === "completed", `run is ${r.status}`);
  expect(r.unfinished_rows === 0, `${r.unfinished_rows} rows neither completed nor failed`);
  expect(r.completed === r.completed_rows, `run counts ${r.completed} completed, users ${r.completed_rows}`);
  expect(r.failed === r.failed_rows, `run counts ${r.failed} failed, users ${r.failed_rows}`);
  expect(r.completed + r.failed === r.total, `${r.completed} + ${r.failed} rows done of ${r.total}`);
  expect(r.retryable === 0, `${r.retryable} rows still counted retryable`);
  expect(r.attempts_out_of_bounds === 0, `${r.attempts_out_of_bounds} rows with attempts outside 1..${maxAttempts}`);
  expect(r.failed_early === 0, `${r.failed_early} rows failed before their last attempt`);
  expect(r.jobs_left === 0, `${r.jobs_left} jobs left in the queue`);
  expect(r.locked_jobs === 0, `${r.locked_jobs} jobs still locked`);
  expect(r.steps === r.expected_steps, `${r.steps} steps recorded, ${r.expected_steps} expected`);
  return problems;
}
