import type { PoolClient } from "pg";
import { formatInZone, nextTick, parseSchedule } from "../jobs/schedule";
import type { TickOutcome } from "../runs/schedules";

/** A tick as status shows it: when, what it did, and the run it started. */
export interface TickShown {
  tick: Date;
  outcome: TickOutcome;
  run: string | null;
  runId: number | null;
  missed: number;
}

/** A scheduled job as status and the dashboard show it. */
export interface ScheduleShown {
  job: string;
  cron: string;
  timeZone: string;
  overlap: string;
  catchUp: string;
  paused: boolean;
  pausedAt: Date | null;
  pausedBy: string | null;
  /** The next tick, in UTC and in the schedule's zone ("2026-12-08 03:00 +01:00"); null if the cron no longer parses. */
  nextTick: Date | null;
  nextTickInZone: string | null;
  queuedTick: Date | null;
  /** The newest ticks first. */
  lastTicks: TickShown[];
}

/** Every scheduled job, with its newest `ticks` ticks; the next tick is computed from the database's clock. */
export async function readSchedules(client: PoolClient, ticks = 5): Promise<ScheduleShown[]> {
  const { rows } = await client.query<Omit<ScheduleShown, "nextTick" | "nextTickInZone"> & { now: Date }>(
    `SELECT s.job, s.cron, s.time_zone AS "timeZone", s.overlap, s.catch_up AS "catchUp", s.paused,
            s.paused_at AS "pausedAt", s.paused_by AS "pausedBy", s.queued_tick AS "queuedTick", now() AS now,
            coalesce((SELECT json_agg(json_build_object('tick', t.tick, 'outcome', t.outcome, 'run', r.batch_name,
                                                        'runId', t.run_id, 'missed', t.missed) ORDER BY t.tick DESC)
                        FROM (SELECT * FROM batch_schedule_ticks t WHERE t.job = s.job ORDER BY t.tick DESC LIMIT $1) t
                        LEFT JOIN batch_jobs r ON r.id = t.run_id), '[]') AS "lastTicks"
       FROM batch_schedules s
      ORDER BY s.job`,
    [ticks],
  );
  return rows.map(({ now, lastTicks, ...schedule }) => {
    const next = nextTickOf(schedule.cron, schedule.timeZone, now);
    return {
      ...schedule,
      nextTick: next ?? null,
      nextTickInZone: next ? formatInZone(next, schedule.timeZone) : null,
      lastTicks: lastTicks.map((tick) => ({ ...tick, tick: new Date(tick.tick) })),
    };
  });
}

/** A scheduled job's figures, for the dashboard's /metrics. */
export interface ScheduleTotals {
  job: string;
  paused: boolean;
  /** The first tick after the last one decided (after the schedule was first written, if none): past while it waits. */
  dueTick: Date | null;
  lastTick: Date | null;
  /** A tick waits behind the job's active run (overlap "queue"). */
  queued: boolean;
  /** Ticks decided, by what they did, as batch_schedule_ticks holds them. */
  ticks: Partial<Record<TickOutcome, number>>;
}

/** Every scheduled job's figures: a row per scheduled job and a count of its ticks by outcome. */
export async function readScheduleTotals(client: PoolClient): Promise<ScheduleTotals[]> {
  const { rows } = await client.query<
    Omit<ScheduleTotals, "dueTick"> & { cron: string; timeZone: string; since: Date }
  >(
    `SELECT s.job, s.cron, s.time_zone AS "timeZone", s.since, s.last_tick AS "lastTick", s.paused,
            s.queued_tick IS NOT NULL AS queued,
            coalesce((SELECT json_object_agg(c.outcome, c.ticks)
                        FROM (SELECT t.outcome, count(*)::int AS ticks FROM batch_schedule_ticks t
                               WHERE t.job = s.job GROUP BY t.outcome) c), '{}') AS ticks
       FROM batch_schedules s
      ORDER BY s.job`,
  );
  return rows.map(({ cron, timeZone, since, ...schedule }) => ({
    ...schedule,
    dueTick: nextTickOf(cron, timeZone, schedule.lastTick ?? since) ?? null,
  }));
}

function nextTickOf(cron: string, timeZone: string, after: Date): Date | undefined {
  try {
    return nextTick(parseSchedule({ cron, timeZone }), after);
  } catch {
    return undefined;
  }
}
