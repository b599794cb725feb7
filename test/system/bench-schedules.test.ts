import { BENCH_MS, runBench } from "../support/bench";

/**
 * `npm run bench -- --quick --only schedules`: a runner of each approach (ours, graphile-worker's
 * crontab, neither) up in a database of its own, its transactions read, no tick waited for.
 */

interface ScheduleCase {
  approach: string;
  processes: number;
}

describe("npm run bench -- --quick --only schedules", () => {
  it(
    "starts the runners of each approach and reports their transactions",
    async () => {
      const { result, report } = await runBench(["--quick", "--only", "schedules"]);
      expect(Object.keys(report).sort()).toEqual(["loadAverage", "schedules", "sectionSeconds"]);
      const schedules = report.schedules as { cases: ScheduleCase[] } & Record<string, unknown>;
      expect(schedules).toMatchObject({ cron: "* * * * *", ticksPerCase: 0, windowSeconds: 5 });
      expect(schedules.cases.map((c) => [c.approach, c.processes])).toEqual([
        ["ours", 1],
        ["crontab", 1],
      ]);
      for (const c of schedules.cases) {
        expect(c).toMatchObject({
          ticks: [],
          runsPerTick: [],
          commitsPerMinute: expect.any(Number),
          baselineCommitsPerMinute: expect.any(Number),
          addedPerMinute: expect.any(Number),
          addedPerTick: null,
        });
      }
      expect(schedules).not.toHaveProperty("outage");
      expect(result.stderr).toMatch(/"\* \* \* \* \*", 1 process\(es\), 0 ticks: runs per tick/);
    },
    BENCH_MS,
  );
});
