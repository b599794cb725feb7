import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { defineJob } from "#pg-batch";
import { freePort } from "../../src/base/free-port";
import { withPool } from "../../src/db/pool";
import { effectiveRateLimit, RateLimiter } from "../../src/processing/rate-limit";
import { createMigratedDatabase, quietLogger, type TestDatabase, useTestDatabase } from "../support/database";
import { ROOT, type Running, seed, startWorker, status } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/**
 * A job's rate limit holds across every worker process: a token bucket in PostgreSQL
 * (batch_take_tokens, sql/migrations/018_rate_limits.sql and 024) that each process takes from
 * in whole batches (src/processing/rate-limit.ts). Rates are measured from the instants the job's function
 * ran, as it wrote them into its table, not from the test's clock.
 */

describe("the limit a job runs under", () => {
  const paced = (rateLimit?: { perSecond: number; burst?: number }) =>
    defineJob({ name: "t", table: "t", key: "id", reads: {}, rateLimit, process: async () => undefined });

  it("is the job's, a second's worth of burst unless it says, and refused when it is no limit", () => {
    expect(paced().rateLimit).toBeUndefined();
    expect(paced({ perSecond: 200 }).rateLimit).toEqual({ perSecond: 200, burst: 200 });
    expect(paced({ perSecond: 0.5 }).rateLimit).toEqual({ perSecond: 0.5, burst: 1 });
    expect(paced({ perSecond: 200, burst: 20 }).rateLimit).toEqual({ perSecond: 200, burst: 20 });
    expect(() => paced({ perSecond: 0 })).toThrow("job t: rateLimit.perSecond must be a number above 0");
    expect(() => paced({ perSecond: 5, burst: 0 })).toThrow("job t: rateLimit.burst must be a number of at least 1");
  });

  it("is overridden by RATE_LIMIT_PER_S and RATE_LIMIT_BURST, or turned off", () => {
    const job = { perSecond: 200, burst: 20 };
    const env = (perSecond: number | "off" | undefined, burst?: number) => ({ perSecond, burst });
    expect(effectiveRateLimit(job, env(undefined))).toEqual(job);
    expect(effectiveRateLimit(job, env(undefined, 50))).toEqual({ perSecond: 200, burst: 50 });
    expect(effectiveRateLimit(undefined, env(undefined, 50))).toBeUndefined();
    expect(effectiveRateLimit(job, env(30))).toEqual({ perSecond: 30, burst: 30 });
    expect(effectiveRateLimit(undefined, env(30, 5))).toEqual({ perSecond: 30, burst: 5 });
    expect(effectiveRateLimit(job, env("off"))).toBeUndefined();
  });
});

const take = async (db: TestDatabase, job: string, want: number, perSecond: number, burst: number) => {
  const { rows } = await db.pool.query("SELECT batch_take_tokens($1, $2, $3, $4) AS granted", [
    job,
    want,
    perSecond,
    burst,
  ]);
  return rows[0].granted as number;
};

describe("batch_take_tokens, the job's bucket", () => {
  const db = useTestDatabase();

  it("starts full, grants a take whole or not at all, and refills by the time elapsed, up to its burst", async () => {
    // a token a second: the moments between takes refill next to nothing
    expect(await take(db, "a", 3, 1, 50)).toBe(3);
    // 47 held: not the 50 of a take of more than the burst, nor any of them
    expect(await take(db, "a", 500, 1, 50)).toBe(0);
    expect(await take(db, "a", 40, 1, 50)).toBe(40);
    // as if the last take were 20 seconds ago, and the bucket empty then: 20 refilled
    await db.pool.query(
      "UPDATE batch_rate_limits SET tokens = 0, refilled_at = clock_timestamp() - interval '20 s' WHERE job = 'a'",
    );
    expect(await take(db, "a", 30, 1, 50)).toBe(0);
    // what a take was refused is still there for the next
    expect(await take(db, "a", 20, 1, 50)).toBe(20);
    // an hour idle fills it to its burst, no further
    await db.pool.query("UPDATE batch_rate_limits SET refilled_at = refilled_at - interval '1 h' WHERE job = 'a'");
    expect(await take(db, "a", 500, 1, 50)).toBe(50);
    const { rows } = await db.pool.query("SELECT * FROM batch_rate_limits WHERE job = 'a'");
    expect(rows[0]).toMatchObject({ per_second: 1, burst: 50 });
    expect(Number(rows[0].granted_total)).toBe(3 + 40 + 20 + 50);
    // each job has its own bucket
    expect(await take(db, "b", 5, 10, 5)).toBe(5);
  });

  it("is what a process's limiter hands to its slices, as many as are at hand up to what each asks", async () => {
    // a batch of three tokens at a time, five in the bucket
    const limiter = new RateLimiter("local", { perSecond: 12, burst: 5 }, withPool(db.pool), quietLogger);
    const always = () => true;
    expect(await Promise.all([limiter.take(2, always), limiter.take(10, always)])).toEqual([2, 3]);
    // next to no refill: every token is one the bucket granted
    const dry = new RateLimiter("dry", { perSecond: 0.001, burst: 1 }, withPool(db.pool), quietLogger);
    expect(await dry.take(4, always)).toBe(1);
    // the bucket is dry: a slice that stops waiting (it will not claim after all) gets none
    let wanted = true;
    const stopping = dry.take(1, () => wanted);
    wanted = false;
    expect(await stopping).toBe(0);
    // tokens a slice did not use go to the next one waiting, without the bucket
    const next = dry.take(3, always);
    dry.giveBack(2);
    expect(await next).toBe(2);
    const { rows } = await db.pool.query(
      "SELECT job, granted_total::int AS granted FROM batch_rate_limits WHERE job IN ('local', 'dry') ORDER BY job",
    );
    expect(rows).toEqual([
      { job: "dry", granted: 1 },
      { job: "local", granted: 5 },
    ]);
  });

  it("refuses a limit that is not one", async () => {
    await expect(take(db, "c", 1, 0, 5)).rejects.toThrow(/per_second must be > 0/);
    await expect(take(db, "c", 1, 5, 0.5)).rejects.toThrow(/burst >= 1/);
  });

  it("takes back tokens a process did not use, up to its burst", async () => {
    // a token a second: the moments between takes refill next to nothing
    expect(await take(db, "back", 10, 1, 10)).toBe(10);
    expect(await take(db, "back", 4, 1, 10)).toBe(0);
    expect(await take(db, "back", -4, 1, 10)).toBe(0);
    expect(await take(db, "back", 4, 1, 10)).toBe(4);
    // given back beyond the burst: the bucket holds its burst
    expect(await take(db, "back", -50, 1, 10)).toBe(0);
    expect(await take(db, "back", 50, 1, 10)).toBe(10);
    const { rows } = await db.pool.query("SELECT granted_total::int AS n FROM batch_rate_limits WHERE job = 'back'");
    expect(rows[0].n).toBe(10 + 4 + 10);
  });

  it("grants concurrent takers together no more than the burst and the rate over the time they took", async () => {
    const { rows: before } = await db.pool.query("SELECT clock_timestamp() AS at");
    const perSecond = 100;
    const burst = 20;
    const takers = Array.from({ length: 6 }, async () => {
      let granted = 0;
      const until = Date.now() + 1500;
      while (Date.now() < until) granted += await take(db, "shared", 7, perSecond, burst);
      return granted;
    });
    const granted = (await Promise.all(takers)).reduce((sum, n) => sum + n, 0);
    const { rows: after } = await db.pool.query("SELECT clock_timestamp() AS at");
    const seconds = (after[0].at.getTime() - before[0].at.getTime()) / 1000;
    expect(granted).toBeGreaterThan(burst);
    expect(granted).toBeLessThanOrEqual(burst + perSecond * seconds);
    const { rows } = await db.pool.query("SELECT granted_total FROM batch_rate_limits WHERE job = 'shared'");
    expect(Number(rows[0].granted_total)).toBe(granted);
  });
});

const PER_SECOND = 200;
const BURST = 100;
const ROWS = 3000;

/** A job whose function only notes when it ran, limited to PER_SECOND records a second. */
const PACED_JOB = `"use strict";
const { column, defineJob } = require(${JSON.stringify(path.join(ROOT, "dist/src/index.js"))});
module.exports = defineJob({
  name: "paced",
  table: "paced_t",
  key: "id",
  reads: {},
  writes: { ranAt: column.timestamptz("ran_at") },
  state: "paced",
  rateLimit: { perSecond: ${PER_SECOND}, burst: ${BURST} },
  async process() {
    return { ranAt: new Date() };
  },
});
`;

describe(`a job limited to ${PER_SECOND} records a second`, () => {
  let db: TestDatabase;
  let jobsDir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    jobsDir = fs.mkdtempSync(path.join(os.tmpdir(), "paced-jobs-"));
    fs.writeFileSync(path.join(jobsDir, "paced.js"), PACED_JOB);
    await db.pool.query(`
      CREATE TABLE paced_t (id BIGINT PRIMARY KEY, ran_at TIMESTAMPTZ,
                            paced_status TEXT NOT NULL DEFAULT 'pending', paced_attempts INTEGER NOT NULL DEFAULT 0,
                            paced_error TEXT, paced_run_id BIGINT, paced_processed_at TIMESTAMPTZ)`);
    env = {
      DATABASE_URL: db.url,
      JOBS_DIR: jobsDir,
      CHUNK_SIZE: "300",
      WORKERS: "2",
      // a lock bound shorter than the wait for tokens: a slice takes its tokens before it claims,
      // so none commits with nothing done and no chunk fails for rows held
      MAX_LOCK_HOLD_S: "0.1",
      LOG_LEVEL: "warn",
    };
  });
  afterAll(async () => {
    fs.rmSync(jobsDir, { recursive: true, force: true });
    await db.drop();
  });

  /** Runs the job over ROWS fresh rows with `processes` workers; returns the instants its function ran. */
  async function paceWith(processes: number, metricsPort?: number): Promise<{ ranAt: number[]; metrics?: string }> {
    await db.pool.query(`TRUNCATE paced_t; INSERT INTO paced_t (id) SELECT generate_series(1, ${ROWS})`);
    const name = `paced-${processes}`;
    const enqueued = await seed(["enqueue", "--job", "paced", "--batch-name", name], env);
    expect(enqueued.code).toBe(0);
    const workers: Running[] = Array.from({ length: processes }, (_, index) =>
      startWorker([], {
        ...env,
        POD_NAME: `pace-${processes}-${index}`,
        METRICS_PORT: index === 0 && metricsPort ? String(metricsPort) : "0",
      }),
    );
    let metrics: string | undefined;
    try {
      await waitFor(
        `run ${name} to complete`,
        async () => (await runByName(db.pool, name)).status === "completed",
        120_000,
      );
      if (metricsPort) metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    } finally {
      for (const worker of workers) worker.child.kill("SIGTERM");
      const ended = await Promise.all(workers.map((worker) => worker.exited));
      expect(ended.map((worker) => worker.stderr).join("")).not.toMatch(/"level":(50|60)/);
    }
    const { rows } = await db.pool.query("SELECT paced_status AS status, count(*)::int AS n FROM paced_t GROUP BY 1");
    expect(rows).toEqual([{ status: "completed", n: ROWS }]);
    const ran = await db.pool.query("SELECT ran_at FROM paced_t ORDER BY ran_at");
    return { ranAt: ran.rows.map((row) => (row.ran_at as Date).getTime()), metrics };
  }

  /** The run's rate, first record to last, and the most records any ten seconds of it held. */
  function measure(ranAt: number[]) {
    const seconds = ((ranAt.at(-1) as number) - (ranAt[0] as number)) / 1000;
    let mostInTen = 0;
    let end = 0;
    for (let start = 0; start < ranAt.length; start++) {
      while (end < ranAt.length && (ranAt[end] as number) < (ranAt[start] as number) + 10_000) end++;
      mostInTen = Math.max(mostInTen, end - start);
    }
    return { rate: (ranAt.length - 1) / seconds, mostInTen };
  }

  it.each([1, 2, 4])(
    "holds across %i worker process(es): the run's rate within 5%%, no ten seconds 10%% over",
    async (processes) => {
      const port = processes === 1 ? await freePort() : undefined;
      const { ranAt, metrics } = await paceWith(processes, port);
      const { rate, mostInTen } = measure(ranAt);
      // a run that starts with a full bucket may go BURST above the limit over its whole length
      expect(rate).toBeGreaterThan(PER_SECOND * 0.95);
      expect(rate).toBeLessThan(PER_SECOND * 1.05);
      expect(mostInTen).toBeLessThanOrEqual(PER_SECOND * 10 * 1.1);

      if (metrics) {
        const sample = (name: string) =>
          Number(new RegExp(`^${name}\\{job="paced"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
        expect(sample("batch_rate_limit_tokens_total")).toBeGreaterThanOrEqual(ROWS);
        expect(sample("batch_rate_limit_wait_seconds_total")).toBeGreaterThan(0);
        // slices claim only the rows they hold tokens for: no record waited for one with its row locked
        expect(metrics).toContain("# TYPE batch_rate_limit_locked_waits_total counter");
        expect(metrics).not.toMatch(/^batch_rate_limit_locked_waits_total\{[^}]*\} [1-9]/m);
      }
      const shown = await status(["--json", `paced-${processes}`], { DATABASE_URL: db.url });
      expect(shown.code).toBe(0);
      const report = JSON.parse(shown.stdout);
      expect(report.rateLimit).toMatchObject({ perSecond: PER_SECOND, burst: BURST });
      expect(report.rateLimit.waitedSeconds).toBeGreaterThan(0);
      // the run's own wait, in status and in its history's last entry
      expect(report.rateLimitWaitedSeconds).toBeGreaterThan(0);
      expect((await status([`paced-${processes}`], { DATABASE_URL: db.url })).stdout).toContain(
        `rate limit ${PER_SECOND} rows/s across every worker (burst ${BURST}): ` +
          `this run's chunks waited ${report.rateLimitWaitedSeconds.toFixed(1)} s for it`,
      );
      const { rows: history } = await db.pool.query(
        `SELECT counts FROM batch_events WHERE run_id = (SELECT id FROM batch_jobs WHERE batch_name = $1)
          ORDER BY id DESC LIMIT 1`,
        [`paced-${processes}`],
      );
      expect(history[0].counts.rateLimitWaitedSeconds).toBeCloseTo(report.rateLimitWaitedSeconds, 1);
    },
  );
});
