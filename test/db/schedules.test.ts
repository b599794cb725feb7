import { z } from "zod";
import type { JobDefinition } from "#pg-batch";
import { JOBS_DIR } from "../../src/base/paths";
import { useCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
import { loadCatalog } from "../../src/jobs/catalog";
import { parseSchedule, type ScheduleSpec } from "../../src/jobs/schedule";
import { setSchedulePaused } from "../../src/runs/schedules";
import { cancelRun } from "../../workflows/batch-control";
import { decideTicks, registerSchedules, requeueStrandedTicks } from "../../workflows/schedule-tick";
import { useTestDatabase } from "../support/database";
import { usersJob } from "../support/jobs";
import { runDueJobs } from "../support/one-job";

// Ticks in 2027, after the database's own clock: the queue jobs of the next ticks are never due
// while these tests run, and every decision is driven by the `now` each test gives.
const SINCE = new Date("2027-03-01T12:00Z");
/** 03:00 in Paris (UTC+1) on the 2nd, 3rd, 4th and 5th of March 2027. */
const TICKS = ["2027-03-02T02:00Z", "2027-03-03T02:00Z", "2027-03-04T02:00Z", "2027-03-05T02:00Z"].map(
  (at) => new Date(at),
);
const seconds = (at: Date, s: number) => new Date(at.getTime() + s * 1000);

function scheduledJob(spec: Partial<ScheduleSpec> = {}): JobDefinition {
  return {
    ...usersJob,
    name: "nightly",
    schedule: parseSchedule({ cron: "0 3 * * *", timeZone: "Europe/Paris", ...spec }),
  };
}

describe("scheduled runs", () => {
  const db = useTestDatabase({ users: 20, each: true });
  const decide = (job: JobDefinition, now: Date, actor = "test") => decideTicks(withPool(db.pool), job, now, actor);

  /** Writes the job's schedule as a worker's start does, its ticks looked for after SINCE. */
  async function register(job: JobDefinition): Promise<void> {
    await registerSchedules(withPool(db.pool), [job], { forget: false });
    await db.pool.query("UPDATE batch_schedules SET since = $1", [SINCE]);
    await registerSchedules(withPool(db.pool), [job], { forget: false });
  }

  async function ticks() {
    const { rows } = await db.pool.query(
      `SELECT to_char(t.tick AT TIME ZONE 'UTC', 'MM-DD"T"HH24:MI') AS tick, t.outcome, r.batch_name AS run, t.missed
         FROM batch_schedule_ticks t LEFT JOIN batch_jobs r ON r.id = t.run_id ORDER BY t.tick`,
    );
    return rows;
  }

  const runs = async () =>
    (await db.pool.query("SELECT batch_name, status FROM batch_jobs WHERE kind = 'process' ORDER BY id")).rows;

  /** The run_at of the job's tick queue job(s). */
  const tickJobs = async () =>
    (
      await db.pool.query<{ run_at: Date }>(
        "SELECT run_at FROM graphile_worker.jobs WHERE task_identifier = 'batch_schedule' ORDER BY run_at",
      )
    ).rows.map((row) => row.run_at.toISOString());

  it("queues the first tick at a worker's start, and starts its run once with two deciding at once", async () => {
    const job = scheduledJob();
    await register(job);
    expect(await tickJobs()).toEqual(["2027-03-02T02:00:00.000Z"]);
    const now = seconds(TICKS[0] as Date, 2);
    const [a, b] = await Promise.all([decide(job, now, "pod-a"), decide(job, now, "pod-b")]);
    expect([a.decided.length, b.decided.length].sort()).toEqual([0, 1]);
    expect(await runs()).toEqual([{ batch_name: "nightly@2027-03-02T02:00Z", status: "pending" }]);
    expect(await ticks()).toEqual([
      { tick: "03-02T02:00", outcome: "started", run: "nightly@2027-03-02T02:00Z", missed: 0 },
    ]);
    // the next tick's queue job, one under the job's key
    expect(await tickJobs()).toEqual(["2027-03-03T02:00:00.000Z"]);
    // a tick decided again (a queue job run twice) changes nothing
    expect((await decide(job, seconds(now, 30))).decided).toEqual([]);
    expect(await runs()).toHaveLength(1);
  });

  it("gives the runs it starts the schedule's parameters", async () => {
    const job = {
      ...scheduledJob({ params: { region: "eu" } }),
      params: z.object({ region: z.string() }),
    };
    await register(job);
    await decide(job, seconds(TICKS[0] as Date, 1));
    const { rows } = await db.pool.query("SELECT config -> 'params' AS params FROM batch_jobs WHERE kind = 'process'");
    expect(rows).toEqual([{ params: { region: "eu" } }]);
  });

  it("starts the latest tick missed while every worker was down, once, and counts the others (catchUp latest)", async () => {
    const job = scheduledJob({ overlap: "skip" });
    await register(job);
    // no worker took the ticks of the 2nd, 3rd and 4th: one comes up on the 4th at noon
    const now = new Date("2027-03-04T12:00Z");
    const { decided } = await decide(job, now);
    expect(decided).toHaveLength(1);
    expect(await ticks()).toEqual([
      { tick: "03-04T02:00", outcome: "started", run: "nightly@2027-03-04T02:00Z", missed: 2 },
    ]);
    expect((await decide(job, seconds(now, 60))).decided).toEqual([]);
    expect(await runs()).toHaveLength(1);
  });

  it("skips a missed tick with catchUp skip, and starts one taken in time", async () => {
    const job = scheduledJob({ catchUp: "skip" });
    await register(job);
    await decide(job, new Date("2027-03-03T12:00Z"));
    expect(await runs()).toEqual([]);
    await decide(job, seconds(TICKS[2] as Date, 40));
    expect(await ticks()).toEqual([
      { tick: "03-03T02:00", outcome: "skipped-missed", run: null, missed: 1 },
      { tick: "03-04T02:00", outcome: "started", run: "nightly@2027-03-04T02:00Z", missed: 0 },
    ]);
  });

  it("skips a tick while the job's previous run is active (overlap skip)", async () => {
    const job = scheduledJob({ overlap: "skip" });
    await register(job);
    await decide(job, seconds(TICKS[0] as Date, 1));
    await decide(job, seconds(TICKS[1] as Date, 1));
    expect(await ticks()).toEqual([
      { tick: "03-02T02:00", outcome: "started", run: "nightly@2027-03-02T02:00Z", missed: 0 },
      { tick: "03-03T02:00", outcome: "skipped-overlap", run: null, missed: 0 },
    ]);
    expect(await runs()).toHaveLength(1);
  });

  it("queues one tick behind the active run and starts it when that run ends (overlap queue)", async () => {
    const job = scheduledJob({ overlap: "queue" });
    await register(job);
    await decide(job, seconds(TICKS[0] as Date, 1));
    await decide(job, seconds(TICKS[1] as Date, 1));
    await decide(job, seconds(TICKS[2] as Date, 1));
    expect((await ticks()).map((t) => t.outcome)).toEqual(["started", "queued", "skipped-overlap"]);
    expect(await tickJobs()).toEqual(["2027-03-05T02:00:00.000Z"]);

    // the run's ending, in its own transaction, makes the tick's queue job due now
    await cancelRun(withPool(db.pool), "nightly@2027-03-02T02:00Z", "test");
    const due = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE run_at <= now()");
    expect(due.rows[0].n).toBe(1);
    await decide(job, seconds(TICKS[2] as Date, 90));
    expect(await ticks()).toEqual([
      { tick: "03-02T02:00", outcome: "started", run: "nightly@2027-03-02T02:00Z", missed: 0 },
      { tick: "03-03T02:00", outcome: "started", run: "nightly@2027-03-03T02:00Z", missed: 0 },
      { tick: "03-04T02:00", outcome: "skipped-overlap", run: null, missed: 0 },
    ]);
    expect(await runs()).toEqual([
      { batch_name: "nightly@2027-03-02T02:00Z", status: "cancelled" },
      { batch_name: "nightly@2027-03-03T02:00Z", status: "pending" },
    ]);
  });

  it("starts nothing while paused, and ticks again once resumed", async () => {
    const job = scheduledJob();
    await register(job);
    const client = await db.pool.connect();
    try {
      expect((await setSchedulePaused(client, "nightly", true, "ops"))?.changed).toBe(true);
      expect((await setSchedulePaused(client, "nightly", true, "ops"))?.changed).toBe(false);
      await decide(job, seconds(TICKS[0] as Date, 1));
      await setSchedulePaused(client, "nightly", false, "ops");
      await decide(job, seconds(TICKS[1] as Date, 1));
    } finally {
      client.release();
    }
    expect(await ticks()).toEqual([
      { tick: "03-02T02:00", outcome: "skipped-paused", run: null, missed: 0 },
      { tick: "03-03T02:00", outcome: "started", run: "nightly@2027-03-03T02:00Z", missed: 0 },
    ]);
  });

  it("forgets the schedule of a job that no longer declares one at seed schema, not at a worker's start", async () => {
    const job = scheduledJob();
    await register(job);
    await decide(job, seconds(TICKS[0] as Date, 1));
    // a worker of the release before the schedule, started in a rolling release
    await registerSchedules(withPool(db.pool), [{ ...job, schedule: undefined }], { forget: false });
    expect((await db.pool.query("SELECT job FROM batch_schedules")).rows).toEqual([{ job: "nightly" }]);
    expect(await tickJobs()).toEqual(["2027-03-03T02:00:00.000Z"]);
    await registerSchedules(withPool(db.pool), [{ ...job, schedule: undefined }], { forget: true });
    expect((await db.pool.query("SELECT job FROM batch_schedules")).rows).toEqual([]);
    expect(await ticks()).toEqual([]);
    expect(await tickJobs()).toEqual([]);
    // its run goes on
    expect(await runs()).toEqual([{ batch_name: "nightly@2027-03-02T02:00Z", status: "pending" }]);
  });

  describe("taken by a worker of another release", () => {
    afterAll(() => useCatalog(loadCatalog(JOBS_DIR).jobs));

    it("is put off for the workers that schedule the job, neither decided nor dropped", async () => {
      const job = scheduledJob();
      await register(job);
      const makeDue = () =>
        db.pool.query("UPDATE graphile_worker._private_jobs SET run_at = now() - interval '1 second'");
      // its job files lack the job, then the job's schedule
      for (const jobs of [[], [{ ...job, schedule: undefined }]]) {
        useCatalog(jobs);
        await makeDue();
        expect(await runDueJobs(db.pool)).toEqual(['batch_schedule {"job":"nightly"} done']);
        const { rows } = await db.pool.query(
          `SELECT attempts, run_at > now() + interval '20 seconds' AS put_off FROM graphile_worker.jobs
            WHERE key = 'schedule:nightly'`,
        );
        expect(rows).toEqual([{ attempts: 0, put_off: true }]);
        expect((await db.pool.query("SELECT job, last_tick FROM batch_schedules")).rows).toEqual([
          { job: "nightly", last_tick: null },
        ]);
        expect(await ticks()).toEqual([]);
      }
      // a worker that schedules it decides the tick, in time
      await decide(job, seconds(TICKS[0] as Date, 90));
      expect(await ticks()).toEqual([
        { tick: "03-02T02:00", outcome: "started", run: "nightly@2027-03-02T02:00Z", missed: 0 },
      ]);
    });

    it("is dropped once the database has no schedule for the job", async () => {
      useCatalog([]);
      await db.pool.query(
        "SELECT graphile_worker.add_job('batch_schedule', '{\"job\":\"gone\"}', job_key := 'schedule:gone')",
      );
      expect(await runDueJobs(db.pool)).toEqual(['batch_schedule {"job":"gone"} done']);
      expect(await tickJobs()).toEqual([]);
    });
  });

  it("queues the next tick again when its queue job failed for good", async () => {
    const job = scheduledJob();
    await register(job);
    const pool = withPool(db.pool);
    expect(await requeueStrandedTicks(pool, [job])).toBe(0);
    await db.pool.query("UPDATE graphile_worker._private_jobs SET attempts = max_attempts");
    expect(await requeueStrandedTicks(pool, [job])).toBe(1);
    const { rows } = await db.pool.query(
      "SELECT attempts, run_at FROM graphile_worker.jobs WHERE key = 'schedule:nightly'",
    );
    expect(rows).toEqual([{ attempts: 0, run_at: TICKS[0] }]);
    expect(await requeueStrandedTicks(pool, [job])).toBe(0);
  });

  it("counts a due tick in the backlog KEDA reads, so that a pod starts for it", async () => {
    const job = scheduledJob();
    await register(job);
    const backlog = async () => (await db.pool.query("SELECT chunks_left::int AS n FROM batch_backlog")).rows[0].n;
    expect(await backlog()).toBe(0);
    await db.pool.query("UPDATE graphile_worker._private_jobs SET run_at = now() - interval '1 minute'");
    expect(await backlog()).toBe(1);
  });
});
