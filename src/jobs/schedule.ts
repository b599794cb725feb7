import { parseCronItem } from "graphile-worker";
import type { GivenParams } from "./params";

/**
 * A job's schedule: a cron expression read in a time zone, and what a tick does when the job's
 * previous run is still active (overlap) or when no worker was up to take it (catchUp). The
 * cron's fields are graphile-worker's (its parser: minute hour day-of-month month day-of-week,
 * numbers, ranges, lists and steps); the zone is applied here, as graphile-worker's own crontab
 * reads them in UTC only.
 */

/** A tick while the job's previous run is active: start nothing ("skip"), or start once it ends ("queue"). */
export type Overlap = "skip" | "queue";
/** A tick no worker took in time: start it late ("latest", the last missed one only) or not at all ("skip"). */
export type CatchUp = "latest" | "skip";

/** A schedule as a job file declares it. */
export interface ScheduleSpec {
  cron: string;
  /** An IANA zone ("Europe/Paris"); UTC when left out. */
  timeZone?: string;
  overlap?: Overlap;
  catchUp?: CatchUp;
  /** The parameters of the runs it starts, checked against the job's `params` when the job is loaded. */
  params?: GivenParams;
}

/** A schedule checked, with its cron parsed. */
export interface Schedule {
  cron: string;
  timeZone: string;
  overlap: Overlap;
  catchUp: CatchUp;
  params: GivenParams;
  matches: (digest: TimeDigest) => boolean;
}

/** A minute's wall-clock fields in the schedule's zone, as graphile-worker's matcher takes them. */
interface TimeDigest {
  min: number;
  hour: number;
  date: number;
  month: number;
  dow: number;
}

/**
 * A tick taken up later than this is a missed one (every worker was down across it, or none was
 * started): a worker picks a due job up within seconds, a pod KEDA starts within a minute or two.
 */
export const MISSED_AFTER_MS = 5 * 60_000;

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
/** Zones change their offset at a quarter hour at the finest, once a day at the most. */
const QUARTER_MS = 15 * MINUTE_MS;
/** How far a tick is looked for: a schedule must tick at least once a year. */
const SCAN_MS = 366 * DAY_MS;
/** Clocks go back by at most an hour (half an hour in some zones): a wall-clock time seen this close before is a repeat. */
const REPEAT_WINDOWS_MS = [30 * MINUTE_MS, 60 * MINUTE_MS];

const OVERLAPS: readonly string[] = ["skip", "queue"] satisfies Overlap[];
const CATCH_UPS: readonly string[] = ["latest", "skip"] satisfies CatchUp[];

/** A schedule's spec checked; throws an Error saying what is wrong with it. */
export function parseSchedule(spec: ScheduleSpec): Schedule {
  if (typeof spec?.cron !== "string") throw new Error("schedule.cron must be a cron expression (5 fields)");
  const timeZone = spec.timeZone ?? "UTC";
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
  } catch {
    throw new Error(`schedule.timeZone ${JSON.stringify(timeZone)} is not a time zone (an IANA name: "Europe/Paris")`);
  }
  const overlap = spec.overlap ?? "skip";
  if (!OVERLAPS.includes(overlap)) throw new Error(`schedule.overlap must be one of ${OVERLAPS.join(", ")}`);
  const catchUp = spec.catchUp ?? "latest";
  if (!CATCH_UPS.includes(catchUp)) throw new Error(`schedule.catchUp must be one of ${CATCH_UPS.join(", ")}`);
  let matches: Schedule["matches"];
  try {
    matches = parseCronItem({ task: "schedule", match: spec.cron.trim(), identifier: "schedule" }).match;
  } catch (error) {
    throw new Error(`schedule.cron ${JSON.stringify(spec.cron)}: ${(error as Error).message}`);
  }
  const params = spec.params ?? {};
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new Error("schedule.params must be an object of the job's parameters");
  }
  const schedule: Schedule = { cron: spec.cron.trim(), timeZone, overlap, catchUp, params, matches };
  if (!nextTick(schedule, new Date())) {
    throw new Error(`schedule.cron ${JSON.stringify(spec.cron)} ticks less than once a year`);
  }
  return schedule;
}

/** The zone's offset from UTC at `ms`, in milliseconds ("GMT+01:00" read back). */
function zoneOffsetMs(format: Intl.DateTimeFormat, ms: number): number {
  const name = format.formatToParts(ms).find((part) => part.type === "timeZoneName")?.value ?? "GMT";
  const match = /^GMT([+-])(\d{2}):(\d{2})$/.exec(name);
  if (!match) return 0;
  const minutes = Number(match[2]) * 60 + Number(match[3]);
  return (match[1] === "-" ? -minutes : minutes) * MINUTE_MS;
}

/** A UTC day's offsets: at its start, at its end, and from when the end's holds. */
interface DayOffsets {
  start: number;
  end: number;
  changesAt: number;
}

/**
 * Wall-clock times in a zone. Reading an offset costs microseconds, so they are read twice a
 * day, and the quarter hour of a change, on the few days one happens, found by halving.
 */
class ZoneClock {
  private readonly format: Intl.DateTimeFormat;
  private readonly days = new Map<number, DayOffsets>();

  constructor(timeZone: string) {
    this.format = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" });
  }

  private offsetsOf(day: number): DayOffsets {
    let offsets = this.days.get(day);
    if (offsets) return offsets;
    const dayStart = day * DAY_MS;
    const start = zoneOffsetMs(this.format, dayStart);
    const end = zoneOffsetMs(this.format, dayStart + DAY_MS);
    let [before, after] = [dayStart, dayStart + DAY_MS];
    while (start !== end && after - before > QUARTER_MS) {
      const middle = before + Math.floor((after - before) / QUARTER_MS / 2) * QUARTER_MS;
      if (zoneOffsetMs(this.format, middle) === start) before = middle;
      else after = middle;
    }
    offsets = { start, end, changesAt: after };
    this.days.set(day, offsets);
    return offsets;
  }

  /** The wall-clock time at `ms` in the zone, as milliseconds read as if it were UTC. */
  wall(ms: number): number {
    const { start, end, changesAt } = this.offsetsOf(Math.floor(ms / DAY_MS));
    return ms + (ms >= changesAt ? end : start);
  }

  digest(ms: number): TimeDigest {
    const wall = new Date(this.wall(ms));
    return {
      min: wall.getUTCMinutes(),
      hour: wall.getUTCHours(),
      date: wall.getUTCDate(),
      month: wall.getUTCMonth() + 1,
      dow: wall.getUTCDay(),
    };
  }

  /** The clocks went back across `ms`: its wall-clock time already came, within the last hour. */
  isRepeat(ms: number): boolean {
    const wall = this.wall(ms);
    return REPEAT_WINDOWS_MS.some((window) => this.wall(ms - window) === wall);
  }
}

/**
 * The schedule's first tick after `after` (or the last before `before`), a whole minute, or
 * undefined when none falls within a year. A wall-clock time the clocks skip (a spring-forward
 * gap) does not tick that day; one they repeat (the hour after they go back) ticks once, at its
 * first occurrence.
 */
function scan(schedule: Schedule, from: Date, direction: 1 | -1): Date | undefined {
  const clock = new ZoneClock(schedule.timeZone);
  const start = Math.floor(from.getTime() / MINUTE_MS) * MINUTE_MS;
  let ms = direction === 1 ? start + MINUTE_MS : start === from.getTime() ? start - MINUTE_MS : start;
  const end = ms + direction * SCAN_MS;
  while (direction === 1 ? ms <= end : ms >= end) {
    const digest = clock.digest(ms);
    if (!hourCanMatch(schedule, digest)) {
      // on to the next (or the previous) hour of the zone's clock
      ms += direction === 1 ? (60 - digest.min) * MINUTE_MS : -(digest.min + 1) * MINUTE_MS;
      continue;
    }
    if (schedule.matches(digest) && !clock.isRepeat(ms)) return new Date(ms);
    ms += direction * MINUTE_MS;
  }
  return undefined;
}

/** Some minute of the digest's hour matches: most hours of most schedules are passed over whole. */
function hourCanMatch(schedule: Schedule, digest: TimeDigest): boolean {
  for (let min = 0; min < 60; min++) if (schedule.matches({ ...digest, min })) return true;
  return false;
}

/** The schedule's first tick strictly after `after`. */
export const nextTick = (schedule: Schedule, after: Date) => scan(schedule, after, 1);

/** The schedule's last tick at or before `atOrBefore`. */
export const latestTick = (schedule: Schedule, atOrBefore: Date) =>
  scan(schedule, new Date(atOrBefore.getTime() + 1), -1);

/** The name of the run a tick starts: the job and the tick's time, to the minute, in UTC. */
export const tickRunName = (job: string, tick: Date) => `${job}@${tick.toISOString().slice(0, 16)}Z`;

/** A time in the schedule's zone, to the minute, with its offset: "2026-12-07 03:00 +01:00". */
export function formatInZone(ms: Date, timeZone: string): string {
  const clock = new ZoneClock(timeZone);
  const wall = clock.wall(ms.getTime());
  const offset = (wall - ms.getTime()) / MINUTE_MS;
  const sign = offset < 0 ? "-" : "+";
  const hours = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
  const minutes = String(Math.abs(offset) % 60).padStart(2, "0");
  return `${new Date(wall).toISOString().slice(0, 16).replace("T", " ")} ${sign}${hours}:${minutes}`;
}

/** How many ticks fall strictly between `after` and `before`, counted up to `limit`. */
export function countTicksBetween(schedule: Schedule, after: Date, before: Date, limit: number): number {
  let count = 0;
  for (let at = nextTick(schedule, after); at && at < before && count < limit; at = nextTick(schedule, at)) count++;
  return count;
}
