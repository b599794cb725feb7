import path from "node:path";
import { BENCH_MS, runBench } from "../support/bench";
import { ROOT, run } from "../support/processes";

/**
 * `npm run bench -- --quick`, its sections in two runs side by side: this file's, and those of
 * test/system/bench-beside.test.ts (an application beside a run, at scale, the rate limit).
 */

const SECTIONS = ["processing", "ceiling", "io-bound", "scale-out", "peers", "latency", "memory", "autoscaling"];

describe("npm run bench -- --quick", () => {
  it(
    `runs ${SECTIONS.join(", ")} end to end and reports every measure`,
    async () => {
      const { result, report } = await runBench(["--quick", "--only", SECTIONS.join(",")]);
      expect(Object.keys(report).sort()).toEqual(
        [
          "autoscalingQuery",
          "ceiling",
          "generate",
          "import",
          "ioBound",
          "loadAverage",
          "peakRssMb",
          "peers",
          "processing",
          "queueLatencyMs",
          "scaleOut",
          "sectionSeconds",
        ].sort(),
      );
      expect(report.processing).toMatchObject({ rows: 20_000, rowsPerSecond: expect.any(Number) });
      // the trigger reads the run's chunks, all due; the rows they hold are the rows pending
      const query = report.autoscalingQuery as { value: number; chunks: number };
      expect(query).toMatchObject({ pendingRows: 50_000, rowsLeft: 50_000 });
      expect(query.value).toBeGreaterThan(0);
      expect(query.value).toBe(query.chunks);
      // the pure-SQL ceiling on our schema, and its twin doing the job's work
      expect(report.ceiling).toMatchObject({
        rowsPerSecond: expect.any(Number),
        ours: expect.any(Number),
        ratio: expect.any(Number),
        twinMatchesJob: true,
      });
      // I/O-bound: one case per delay, with its bound and its phases
      const phases = {
        rows: expect.any(Number),
        wallRowsPerSecond: expect.any(Number),
        startupSeconds: expect.any(Number),
        steadyRowsPerSecond: expect.any(Number),
        tailSeconds: expect.any(Number),
      };
      expect(report.ioBound.cases.map((c) => [c.delayMs, c.spread])).toEqual([
        [20, "fixed"],
        [2, "fixed"],
        [20, "exponential"],
      ]);
      for (const c of report.ioBound.cases) {
        expect(c).toMatchObject({
          ...phases,
          bound: expect.any(Number),
          steadyRatio: expect.any(Number),
          roundWallRatios: [c.wallRatio],
        });
      }
      // scale-out: 1, 2 and 4 processes, against N × one
      expect(report.scaleOut.rows.map((r) => r.processes)).toEqual([1, 2, 4]);
      for (const r of report.scaleOut.rows) {
        expect(r).toMatchObject({ ...phases, wallScaling: expect.any(Number), steadyScaling: expect.any(Number) });
      }
      // peers: same rows, ours against each
      for (const peer of ["graphileWorker", "pgBoss"]) {
        expect(report.peers[peer]).toMatchObject({ rowsPerSecond: expect.any(Number), oursRatio: expect.any(Number) });
      }
      expect(report.peers.ours).toMatchObject({ rowsPerSecond: expect.any(Number) });
      expect(Object.keys(report.sectionSeconds).sort()).toEqual(
        ["autoscaling", "io-bound", "latency", "memory", "peers", "processing+ceiling", "scale-out"].sort(),
      );
      expect(result.stderr).toMatch(/measure\s+ours\s+reference\s+ratio\s+target/);
    },
    BENCH_MS,
  );

  it("refuses an unknown section", async () => {
    const result = await run(
      process.execPath,
      [path.join(ROOT, "dist/bench/bench.js"), "--quick", "--only", "nonsense"],
      { DATABASE_URL: process.env.TEST_ADMIN_DATABASE_URL as string },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unknown section nonsense/);
  });
});
