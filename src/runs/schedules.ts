import type { PoolClient } from "pg";
import type { Schedule } from "../jobs/schedule";
import { addQueueJob, queueJobKeys, STEP_MAX_ATTEMPTS, TASKS } from "./job-queue";

/**
 * The SQL of scheduled jobs (batch_schedules) and of what their ticks did
 * (batch_schedule_ticks). Callers own transactions.
 */

/** A scheduled job's row: its schedule as last written, where its ticks are, and whether it is paused. */
export interface ScheduleState {
  job: string;
  cron: string;
  timeZone: string;
  overlap: Schedule["overlap"];
  catchUp: Schedule["catchUp"];
  since: Date;
  lastTick: Date | null;
  queuedTick: Date | null;
  paused: boolean;
  pausedAt: Date | null;
  pausedBy: string | null;
}

/** What a tick did (batch_schedule_ticks.outcome). */
export const TICK_OUTCOMES = [
  "started",
  "queued",
  "skipped-overlap",
  "skipped-missed",
  "skipped-paused",
  "skipped-nothing",
] as const;
export type TickOutcome = (typeof TICK_OUTCOMES)[number];

export interface TickRecord {
  job: string;
  tick: Date;
  outcome: TickOutcome;
  runId: number | null;
  missed: number;
}

const SCHEDULE_COLUMNS = `
  job, cron, time_zone AS "timeZone", overlap, catch_up AS "catchUp", since,
  last_tick AS "lastTick", queued_tick AS "queuedTick", paused, paused_at AS "pausedAt", paused_by AS "pausedBy"`;

/**
 * Writes the job's schedule as its definition has it, keeping where its ticks are and whether
 * it is paused; a job seen for the first time looks for ticks from now on.
 */
export async function registerSchedule(client: PoolClient, job: string, schedule: Schedule): Promise<ScheduleState> {
  const { rows } = await client.query<ScheduleState>(
    `INSERT INTO batch_schedules (job, cron, time_zone, overlap, catch_up)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (job) DO UPDATE
       SET cron = excluded.cron, time_zone = excluded.time_zone, overlap = excluded.overlap,
           catch_up = excluded.catch_up, updated_at = now()
       WHERE (batch_schedules.cron, batch_schedules.time_zone, batch_schedules.overlap, batch_schedules.catch_up)
             IS DISTINCT FROM (excluded.cron, excluded.time_zone, excluded.overlap, excluded.catch_up)
     RETURNING ${SCHEDULE_COLUMNS}`,
    [job, schedule.cron, schedule.timeZone, schedule.overlap, schedule.catchUp],
  );
  return rows[0] ?? ((await readSchedule(client, job)) as ScheduleState);
}

export async function readSchedule(client: PoolClient, job: string): Promise<ScheduleState | undefined> {
  const { rows } = await client.query<ScheduleState>(`SELECT ${SCHEDULE_COLUMNS} FROM batch_schedules WHERE job = $1`, [
    job,
  ]);
  return rows[0];
}

/** The job's schedule row, locked (FOR UPDATE) until the caller's transaction ends: one tick decided at a time. */
export async function lockSchedule(client: PoolClient, job: string): Promise<ScheduleState | undefined> {
  const { rows } = await client.query<ScheduleState>(
    `SELECT ${SCHEDULE_COLUMNS} FROM batch_schedules WHERE job = $1 FOR UPDATE`,
    [job],
  );
  return rows[0];
}

/** Moves the schedule's ticks on: the latest decided, and the one queued behind the active run. */
export async function advanceSchedule(
  client: PoolClient,
  job: string,
  ticks: { lastTick: Date | null; queuedTick: Date | null },
): Promise<void> {
  await client.query("UPDATE batch_schedules SET last_tick = $2, queued_tick = $3, updated_at = now() WHERE job = $1", [
    job,
    ticks.lastTick,
    ticks.queuedTick,
  ]);
}

/** Records what a tick did; a queued tick's record becomes what it did once it is decided again. */
export async function recordTick(client: PoolClient, record: TickRecord, actor: string): Promise<void> {
  await client.query(
    `INSERT INTO batch_schedule_ticks (job, tick, outcome, run_id, missed, decided_by)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (job, tick) DO UPDATE
       SET outcome = excluded.outcome, run_id = excluded.run_id, decided_at = now(), decided_by = excluded.decided_by`,
    [record.job, record.tick, record.outcome, record.runId, record.missed, actor],
  );
}

/** Pauses or resumes the job's schedule; undefined when the job has none. */
export async function setSchedulePaused(
  client: PoolClient,
  job: string,
  paused: boolean,
  actor: string,
): Promise<{ state: ScheduleState; changed: boolean } | undefined> {
  const { rows } = await client.query<ScheduleState>(
    `UPDATE batch_schedules
        SET paused = $2, paused_at = CASE WHEN $2 THEN now() END, paused_by = CASE WHEN $2 THEN $3 END,
            updated_at = now()
      WHERE job = $1 AND paused IS DISTINCT FROM $2
      RETURNING ${SCHEDULE_COLUMNS}`,
    [job, paused, actor],
  );
  if (rows[0]) return { state: rows[0], changed: true };
  const state = await readSchedule(client, job);
  return state && { state, changed: false };
}

/** The job declares no schedule (any more): its row, its ticks' records and its waiting tick's queue job go. */
export async function forgetSchedule(client: PoolClient, job: string): Promise<void> {
  const { rowCount } = await client.query("DELETE FROM batch_schedules WHERE job = $1", [job]);
  if (rowCount) await client.query("SELECT graphile_worker.remove_job($1)", [queueJobKeys.schedule(job)]);
}

/** Which of `jobs`' schedules have no queue job that may still run (gone, or its attempts spent). */
export async function findStrandedSchedules(client: PoolClient, jobs: string[]): Promise<string[]> {
  const { rows } = await client.query<{ job: string }>(
    `SELECT s.job FROM batch_schedules s
      WHERE s.job = ANY($1::text[])
        AND NOT EXISTS (SELECT 1 FROM graphile_worker.jobs j
                         WHERE j.key = 'schedule:' || s.job AND j.attempts < j.max_attempts)`,
    [jobs],
  );
  return rows.map((row) => row.job);
}

/** The queue job that decides the job's next tick, due at `runAt` (now when left out): one per job, under its key. */
export async function addTickQueueJob(client: PoolClient, job: string, runAt?: Date): Promise<void> {
  await addQueueJob(client, TASKS.schedule, { job }, queueJobKeys.schedule(job), STEP_MAX_ATTEMPTS, runAt);
}

/**
 * The job's run has ended: a tick queued behind it is decided now. The schedule's row is locked
 * first, so that a tick being queued in a transaction not yet committed is seen once it commits.
 */
export async function wakeQueuedTick(client: PoolClient, job: string): Promise<void> {
  const { rows } = await client.query<{ queued: boolean }>(
    "SELECT queued_tick IS NOT NULL AS queued FROM batch_schedules WHERE job = $1 FOR UPDATE",
    [job],
  );
  if (rows[0]?.queued) await addTickQueueJob(client, job);
}
