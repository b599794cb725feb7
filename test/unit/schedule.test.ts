import { z } from "zod";
import { defineJob, JobDefinitionError } from "#pg-batch";
import { formatInZone, latestTick, nextTick, parseSchedule, type Schedule, tickRunName } from "../../src/jobs/schedule";

/** The schedule's ticks after `from`, `count` of them, in UTC. */
function ticksAfter(schedule: Schedule, from: string, count: number): string[] {
  const ticks: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < count; i++) {
    at = nextTick(schedule, at) as Date;
    ticks.push(at.toISOString());
  }
  return ticks;
}

describe("a schedule's ticks", () => {
  it("reads the cron in its zone, across the spring change of offset", () => {
    const nightly = parseSchedule({ cron: "0 3 * * *", timeZone: "Europe/Paris" });
    // Paris is UTC+1 until 2026-03-29 02:00, UTC+2 from then
    expect(ticksAfter(nightly, "2026-03-27T12:00Z", 3)).toEqual([
      "2026-03-28T02:00:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T01:00:00.000Z",
    ]);
    expect(formatInZone(new Date("2026-03-29T01:00Z"), "Europe/Paris")).toBe("2026-03-29 03:00 +02:00");
  });

  it("skips a wall-clock time the clocks jump over, and ticks once at one they repeat", () => {
    const early = parseSchedule({ cron: "30 2 * * *", timeZone: "Europe/Paris" });
    // 02:30 does not happen on 2026-03-29 in Paris
    expect(ticksAfter(early, "2026-03-27T12:00Z", 2)).toEqual(["2026-03-28T01:30:00.000Z", "2026-03-30T00:30:00.000Z"]);
    // 02:30 happens twice on 2026-10-25 (at +02:00, then +01:00): the first one ticks
    expect(ticksAfter(early, "2026-10-24T12:00Z", 2)).toEqual(["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]);
  });

  it("is UTC without a zone, and finds the latest tick at or before a time", () => {
    const hourly = parseSchedule({ cron: "15 * * * *" });
    expect(hourly.timeZone).toBe("UTC");
    expect(latestTick(hourly, new Date("2026-12-07T03:15Z"))?.toISOString()).toBe("2026-12-07T03:15:00.000Z");
    expect(latestTick(hourly, new Date("2026-12-07T03:14:59Z"))?.toISOString()).toBe("2026-12-07T02:15:00.000Z");
    expect(nextTick(hourly, new Date("2026-12-07T03:15Z"))?.toISOString()).toBe("2026-12-07T04:15:00.000Z");
  });

  it("honours day of week and day of month in the zone, not in UTC", () => {
    // Mondays at 00:30 in Tokyo are Sundays at 15:30 in UTC
    const monday = parseSchedule({ cron: "30 0 * * 1", timeZone: "Asia/Tokyo" });
    expect(ticksAfter(monday, "2026-12-01T00:00Z", 2)).toEqual([
      "2026-12-06T15:30:00.000Z",
      "2026-12-13T15:30:00.000Z",
    ]);
  });

  it("finds a yearly tick", () => {
    const yearly = parseSchedule({ cron: "0 0 1 1 *", timeZone: "America/New_York" });
    expect(nextTick(yearly, new Date("2026-01-01T06:00Z"))?.toISOString()).toBe("2027-01-01T05:00:00.000Z");
  });

  it("names a tick's run from the job and the tick, in UTC", () => {
    expect(tickRunName("nightly-users", new Date("2026-12-07T03:00Z"))).toBe("nightly-users@2026-12-07T03:00Z");
  });
});

describe("a job's schedule, checked when the job is defined", () => {
  /** A job of that schedule, and of those parameters when given. */
  const job = (schedule: object, params?: z.ZodObject) => () =>
    defineJob({
      name: "nightly",
      table: "users",
      key: "id",
      reads: {},
      params,
      schedule: schedule as never,
      process: async () => undefined,
    });

  it("takes a good one, with its defaults", () => {
    const { schedule } = job({ cron: "0 3 * * *", timeZone: "Europe/Paris" })();
    expect(schedule).toMatchObject({ cron: "0 3 * * *", timeZone: "Europe/Paris", overlap: "skip", catchUp: "latest" });
  });

  it("checks the parameters it gives its runs against the job's params, as a run's", () => {
    const regions = z.object({ region: z.enum(["eu", "us"]), limit: z.number().int().default(100) });
    const withParams = (params: object) => job({ cron: "0 3 * * *", params }, regions);
    expect(withParams({ region: "eu" })().schedule?.params).toEqual({ region: "eu" });
    expect(withParams({ region: "mars" })).toThrow(/^job nightly: schedule.params: region: /);
    expect(withParams({ region: "eu", limt: 5 })).toThrow("limt: not a parameter of job nightly");
    expect(job({ cron: "0 3 * * *", params: { region: "eu" } })).toThrow(
      "job nightly: schedule.params: region: job nightly takes no parameters",
    );
  });

  it.each([
    [{ cron: "0 3 * *" }, /job nightly: schedule.cron "0 3 \* \*":/],
    [{ cron: "61 3 * * *" }, /job nightly: schedule.cron .*61/],
    [{ cron: "0 0 31 2 *" }, /ticks less than once a year/],
    [{ cron: "0 3 * * *", timeZone: "Europe/Nowhere" }, /schedule.timeZone "Europe\/Nowhere" is not a time zone/],
    [{ cron: "0 3 * * *", overlap: "wait" }, /schedule.overlap must be one of skip, queue/],
    [{ cron: "0 3 * * *", catchUp: "all" }, /schedule.catchUp must be one of latest, skip/],
  ])("refuses %j with one line", (schedule, message) => {
    expect(job(schedule)).toThrow(JobDefinitionError);
    expect(job(schedule)).toThrow(message);
  });
});
