import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { usersJobSource } from "../../bench/schedules";
import { tickRunName } from "../../src/jobs/schedule";
import { startDashboard } from "../support/dashboard";
import { useTestDatabase } from "../support/database";
import { batch, lastJsonLine, ROOT, type Running, run, startWorker, status, stopAll } from "../support/processes";
import { waitFor } from "../support/runs";

/**
 * A scheduled job with real worker processes: two start together after every worker was down
 * across the job's ticks, and the latest tick starts one run, which they work through; status
 * shows the schedule, the dashboard's /metrics its ticks, and `batch schedule pause` pauses it for
 * every pod. The ticks' decisions themselves, with the clock driven, are test/db/schedules.test.ts's.
 */

/** The `batch_schedule_` samples of a Prometheus text exposition, sorted. */
const scheduleSamples = (text: string) =>
  text
    .split("\n")
    .filter((line) => line.startsWith("batch_schedule_"))
    .sort();

const JOB = usersJobSource("nightly", '{ cron: "0 3 * * *", timeZone: "Europe/Paris" }');

describe("a scheduled job, with two worker processes", () => {
  const db = useTestDatabase({ users: 300 });
  const workers: Running[] = [];
  let jobsDir: string;

  beforeAll(async () => {
    jobsDir = await fs.mkdtemp(path.join(os.tmpdir(), "scheduled-job-"));
    await fs.writeFile(path.join(jobsDir, "nightly.js"), JOB);
  });
  afterAll(async () => {
    await stopAll(workers, "SIGTERM");
    await fs.rm(jobsDir, { recursive: true, force: true });
  });

  it("starts the latest tick missed while none was up once, and status and pause show it", async () => {
    // known for two days, no tick taken: the ticks came while every worker was down
    await db.pool.query(
      `INSERT INTO batch_schedules (job, cron, time_zone, overlap, catch_up, since)
       VALUES ('nightly', '0 3 * * *', 'Europe/Paris', 'skip', 'latest', now() - interval '2 days')`,
    );
    const env = { DATABASE_URL: db.url, JOBS_DIR: jobsDir, WORKERS: "2" };
    workers.push(startWorker([], { ...env, POD_NAME: "pod-a" }), startWorker([], { ...env, POD_NAME: "pod-b" }));
    const started = await waitFor("the tick's run to complete", async () => {
      const { rows } = await db.pool.query(
        "SELECT batch_name, status, processed_records FROM batch_jobs WHERE kind = 'process' AND status = 'completed'",
      );
      return rows[0];
    });
    const { rows: ticks } = await db.pool.query(
      "SELECT tick, outcome, missed, decided_by FROM batch_schedule_ticks WHERE job = 'nightly'",
    );
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ outcome: "started" });
    expect(ticks[0].missed).toBeGreaterThanOrEqual(1);
    expect(started).toEqual({
      batch_name: tickRunName("nightly", ticks[0].tick),
      status: "completed",
      processed_records: 300,
    });
    const { rows: runs } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs WHERE kind = 'process'");
    expect(runs[0].n).toBe(1);
    // the next tick waits in the queue, one job under the job's key
    const { rows: queued } = await db.pool.query(
      "SELECT run_at > now() AS later FROM graphile_worker.jobs WHERE key = 'schedule:nightly'",
    );
    expect(queued).toEqual([{ later: true }]);

    const shown = await status(["--json"], { DATABASE_URL: db.url });
    expect(shown.code).toBe(0);
    const [schedule] = (lastJsonLine(shown.stdout) as { schedules: Record<string, unknown>[] }).schedules;
    expect(schedule).toMatchObject({ job: "nightly", cron: "0 3 * * *", timeZone: "Europe/Paris", paused: false });
    expect(schedule?.nextTickInZone).toMatch(/^\d{4}-\d\d-\d\d 03:00 \+0[12]:00$/);
    expect(schedule?.lastTicks).toEqual([expect.objectContaining({ outcome: "started", run: started.batch_name })]);

    const dashboard = await startDashboard({ DATABASE_URL: db.url });
    const scrape = async () => scheduleSamples(await (await fetch(`${dashboard.url}/metrics`)).text());
    try {
      const { rows: due } = await db.pool.query<{ at: Date }>(
        "SELECT run_at AS at FROM graphile_worker.jobs WHERE key = 'schedule:nightly'",
      );
      const unix = (at: Date | undefined) => (at as Date).getTime() / 1000;
      expect(await scrape()).toEqual([
        `batch_schedule_last_tick_timestamp_seconds{job="nightly"} ${unix(ticks[0].tick)}`,
        // the next tick to decide is the one its queue job waits for
        `batch_schedule_next_tick_timestamp_seconds{job="nightly"} ${unix(due[0]?.at)}`,
        'batch_schedule_paused{job="nightly"} 0',
        'batch_schedule_tick_queued{job="nightly"} 0',
        'batch_schedule_ticks_total{job="nightly",outcome="skipped-missed"} 0',
        'batch_schedule_ticks_total{job="nightly",outcome="skipped-nothing"} 0',
        'batch_schedule_ticks_total{job="nightly",outcome="skipped-overlap"} 0',
        'batch_schedule_ticks_total{job="nightly",outcome="skipped-paused"} 0',
        'batch_schedule_ticks_total{job="nightly",outcome="started"} 1',
      ]);

      const paused = await batch(["schedule", "pause", "nightly"], { DATABASE_URL: db.url });
      expect(paused.code).toBe(0);
      expect(lastJsonLine(paused.stdout)).toMatchObject({ job: "nightly", paused: true, changed: true });
      expect(await scrape()).toContain('batch_schedule_paused{job="nightly"} 1');
    } finally {
      await dashboard.stop();
    }
    const text = await status([], { DATABASE_URL: db.url });
    expect(text.stdout).toMatch(/nightly +0 3 \* \* \* +Europe\/Paris +skip +latest +yes, by /);
    expect(text.stdout).toContain(`started  ${started.batch_name}`);
    const listed = await run(process.execPath, [path.join(ROOT, "dist/cli/jobs.js"), "list"], { JOBS_DIR: jobsDir });
    expect(listed.stdout).toMatch(/^nightly\s.*\s0 3 \* \* \* \(Europe\/Paris\)\s/m);
    const unknown = await batch(["schedule", "resume", "nope"], { DATABASE_URL: db.url });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('job "nope" has no schedule in this database');
  });
});
