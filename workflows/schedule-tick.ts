import type { PoolClient } from "pg";
import { getConfig } from "../src/config/config";
import { inTransaction, type WithClient } from "../src/db/pool";
import type { JobDefinition } from "../src/jobs/define";
import { countTicksBetween, latestTick, MISSED_AFTER_MS, nextTick, tickRunName } from "../src/jobs/schedule";
import { findActiveRun, findRunByName } from "../src/runs/runs";
import {
  addTickQueueJob,
  advanceSchedule,
  findStrandedSchedules,
  forgetSchedule,
  lockSchedule,
  recordTick,
  registerSchedule,
  type ScheduleState,
  type TickOutcome,
  type TickRecord,
} from "../src/runs/schedules";
import { NothingToProcessError, RunConflictError, runSettings, startRun } from "./start-run";

/**
 * Scheduled runs. A job's schedule has one queue job (batch_schedule, keyed by the job), due at
 * its next tick; whichever worker takes it decides the tick under the schedule's row lock, starts
 * the tick's run (named from the job and the tick, so a tick decided twice finds its run), records
 * what the tick did and adds the queue job of the next tick, all before it commits. Every worker
 * writes its jobs' schedules at its start and adds that queue job if it is missing
 * (registerSchedules). No process keeps a clock of its own: with no worker up, the queue job waits
 * in the database, counted in the backlog so that KEDA starts a pod for it, and the tick is
 * decided late: started (catchUp "latest", the last missed tick only) or skipped ("skip").
 */

/** Cron digits over this many missed ticks are not counted one by one. */
const MISSED_COUNT_LIMIT = 1000;

/**
 * How long a worker that does not schedule a job (one of another release) puts its tick off: well
 * within MISSED_AFTER_MS, so that a worker that schedules it takes the tick in time.
 */
const TICK_LEFT_FOR_MS = 30_000;

/** What deciding a job's ticks did: the ticks decided now (none when none was due). */
export interface TickDecision {
  decided: TickRecord[];
  next: Date | undefined;
}

/**
 * Writes the schedule of each job that has one, and adds the queue job of its next tick (after
 * the last tick decided, or after now for a job seen for the first time: a tick already past is
 * due at once, and decided as missed or not). Run by `seed schema` and by every worker at its
 * start; repeating it is harmless, the queue job is one per job under its key. With `forget`
 * (`seed schema`, once per release), a job of `jobs` that no longer declares one loses its
 * schedule, its ticks' records and its queue job; a worker does not forget, since in a rolling
 * release a worker of the release before may start after the schedule was added.
 */
export async function registerSchedules(
  db: WithClient,
  jobs: JobDefinition[],
  options: { forget: boolean },
): Promise<number> {
  let registered = 0;
  for (const { name, schedule } of jobs) {
    if (!schedule && !options.forget) continue;
    await db((client) =>
      inTransaction(client, async () => {
        if (!schedule) return forgetSchedule(client, name);
        const state = await registerSchedule(client, name, schedule);
        const next = nextTick(schedule, state.lastTick ?? state.since);
        // a tick queued behind a run is decided at once: the run may have ended while no worker was up
        if (state.queuedTick || next) await addTickQueueJob(client, name, state.queuedTick ? undefined : next);
      }),
    );
    if (schedule) registered++;
  }
  return registered;
}

/**
 * Queues again the next tick of each of `jobs`' schedules whose queue job is gone or failed for
 * good (its attempts spent on a tick that kept failing): run by the workers' periodic recovery,
 * so that a schedule does not wait for the next worker start. The tick is then decided as any
 * late one.
 */
export async function requeueStrandedTicks(db: WithClient, jobs: JobDefinition[]): Promise<number> {
  const scheduled = jobs.filter((job) => job.schedule);
  if (scheduled.length === 0) return 0;
  const stranded = new Set(
    await db((client) =>
      findStrandedSchedules(
        client,
        scheduled.map((job) => job.name),
      ),
    ),
  );
  return registerSchedules(
    db,
    scheduled.filter((job) => stranded.has(job.name)),
    { forget: false },
  );
}

/**
 * Decides the job's ticks due at `now`: a tick queued behind a run that has since ended, then
 * the latest tick due, if it was not decided yet. Holds the schedule's row lock throughout, so two
 * workers deciding at once decide each tick once; the run is started on a connection of its own
 * (startRun), idempotent by its name. Adds the queue job of the next tick.
 */
export async function decideTicks(db: WithClient, job: JobDefinition, now: Date, actor: string): Promise<TickDecision> {
  const schedule = job.schedule;
  if (!schedule) return { decided: [], next: undefined };
  return db((client) =>
    inTransaction(client, async () => {
      const state = await lockSchedule(client, job.name);
      if (!state) return { decided: [], next: undefined };
      const decided: TickRecord[] = [];
      let queuedTick = state.queuedTick;
      if (queuedTick && !(await findActiveRun(client, job.name))) {
        decided.push(await startTick(db, client, job, state, queuedTick, 0, actor));
        queuedTick = null;
      }
      let lastTick = state.lastTick;
      const due = latestTick(schedule, now);
      const after = lastTick ?? state.since;
      if (due && due > after) {
        const missed = countTicksBetween(schedule, after, due, MISSED_COUNT_LIMIT);
        let record: TickRecord;
        if (now.getTime() - due.getTime() > MISSED_AFTER_MS && schedule.catchUp === "skip") {
          record = { job: job.name, tick: due, outcome: "skipped-missed", runId: null, missed };
        } else {
          record = await startTick(db, client, job, state, due, missed, actor);
          if (record.outcome === "skipped-overlap" && schedule.overlap === "queue" && !queuedTick) {
            record = { ...record, outcome: "queued" };
            queuedTick = due;
          }
        }
        decided.push(record);
        lastTick = due;
      }
      for (const record of decided) await recordTick(client, record, actor);
      await advanceSchedule(client, job.name, { lastTick, queuedTick });
      const next = nextTick(schedule, now);
      if (next) await addTickQueueJob(client, job.name, next);
      return { decided, next };
    }),
  );
}

/**
 * The tick of a job this worker does not schedule (its job file, of another release, lacks the
 * job or its schedule): neither decided nor dropped, but its queue job put off TICK_LEFT_FOR_MS
 * for a worker that schedules the job to take. Returns when it is due again; undefined when the
 * database has no schedule for the job any more (`seed schema` forgot it): nothing to keep.
 */
export async function leaveTick(db: WithClient, name: string, now: Date): Promise<Date | undefined> {
  return db((client) =>
    inTransaction(client, async () => {
      if (!(await lockSchedule(client, name))) return undefined;
      const runAt = new Date(now.getTime() + TICK_LEFT_FOR_MS);
      await addTickQueueJob(client, name, runAt);
      return runAt;
    }),
  );
}

/**
 * Starts the tick's run unless the schedule is paused or the job's previous run is still
 * active. A run of the tick's name found is the one this tick started before it was recorded.
 */
async function startTick(
  db: WithClient,
  client: PoolClient,
  job: JobDefinition,
  state: ScheduleState,
  tick: Date,
  missed: number,
  actor: string,
): Promise<TickRecord> {
  const name = tickRunName(job.name, tick);
  const record = (outcome: TickOutcome, runId: number | null = null): TickRecord => ({
    job: job.name,
    tick,
    outcome,
    runId,
    missed,
  });
  const existing = await findRunByName(client, name);
  if (existing) return record("started", existing.id);
  if (state.paused) return record("skipped-paused");
  if (await findActiveRun(client, job.name)) return record("skipped-overlap");
  try {
    const { run } = await startRun(db, job, name, runSettings(getConfig(), job, job.schedule?.params), actor);
    return record("started", run.id);
  } catch (error) {
    if (error instanceof NothingToProcessError) return record("skipped-nothing");
    // a run started by hand between the look and the start
    if (error instanceof RunConflictError) return record("skipped-overlap");
    throw error;
  }
}
