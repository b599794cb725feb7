import { PROFILES } from "../../bench/beside-app";
import { BENCH_MS, runBench } from "../support/bench";

/** `npm run bench -- --quick`: the sections test/system/bench.test.ts leaves to this file. */

describe("npm run bench -- --quick --only at-scale,beside-app,rate-limit", () => {
  it(
    "runs them end to end and reports every measure",
    async () => {
      const { result, report } = await runBench(["--quick", "--only", "at-scale,beside-app,rate-limit"]);
      expect(Object.keys(report).sort()).toEqual([
        "atScale",
        "besideApp",
        "loadAverage",
        "rateLimit",
        "sectionSeconds",
      ]);
      expect(Object.keys(report.sectionSeconds).sort()).toEqual(["at-scale", "beside-app", "rate-limit"]);
      // the rate limit: unlimited, far above the worker's pace (no slower), near it (held to it)
      expect(report.rateLimit).toMatchObject({
        unlimited: expect.any(Number),
        farAbove: { perSecond: 1_000_000, rowsPerSecond: expect.any(Number), ratio: expect.any(Number) },
        near: { perSecond: expect.any(Number), rowsPerSecond: expect.any(Number), ofLimit: expect.any(Number) },
      });

      // at scale: the import against load-then-index, the plan, two processes over every row
      expect(report.atScale).toMatchObject({
        rows: 20_000,
        import: {
          seconds: expect.any(Number),
          loadThenIndexSeconds: expect.any(Number),
          ratio: expect.any(Number),
          rounds: [expect.objectContaining({ rows: 20_000 })],
        },
        enqueue: { seconds: expect.any(Number), plannedRows: 20_000, finalTotal: 20_000 },
        processing: { processes: 2, rowsPerSecond: expect.any(Number), hotShare: expect.any(Number) },
      });
      // beside an application: alone and beside a run, per profile, without and with I/O
      expect(report.besideApp.cases.map((c) => [c.profile, c.delayMs])).toEqual(
        Object.keys(PROFILES).flatMap((profile) => [
          [profile, 0],
          [profile, 20],
        ]),
      );
      expect(Object.keys(PROFILES)).toEqual(expect.arrayContaining(["defaults", "busy primary"]));
      const app = {
        transactions: expect.any(Number),
        p50Ms: expect.any(Number),
        p99Ms: expect.any(Number),
        maxMs: expect.any(Number),
        p99FromStartMs: expect.any(Number),
        lockWaits: expect.any(Number),
        longestLockWaitMs: expect.any(Number),
        checkpoints: expect.any(Number),
      };
      // alone before and after the beside window, pooled: the pooled window holds both halves'
      // transactions and the checkpoints of both
      const windows = {
        alone: app,
        aloneBefore: app,
        aloneAfter: app,
        beside: app,
        p99Ratio: expect.any(Number),
        p99FromStartRatio: expect.any(Number),
      };
      for (const c of report.besideApp.cases) {
        expect(c).toMatchObject({ ...windows, runRowsPerSecond: expect.any(Number) });
        expect(c.aloneBefore.transactions).toBeGreaterThan(0);
        expect(c.aloneAfter.transactions).toBeGreaterThan(0);
        expect(c.beside.transactions).toBeGreaterThan(0);
        expect(c.alone.transactions).toBe(c.aloneBefore.transactions + c.aloneAfter.transactions);
        expect(c.alone.checkpoints).toBe(c.aloneBefore.checkpoints + c.aloneAfter.checkpoints);
        // rows a slice, from the worker's metrics, when it served them at both ends of the window
        if (c.rowsPerSlice !== undefined) expect(c.rowsPerSlice).toBeGreaterThan(0);
      }
      // the database's own reference: the job's SQL twin beside the same application, at the pace
      // the busy-primary run reached without I/O
      const busyPrimary = report.besideApp.cases.find((c) => c.profile === "busy primary" && c.delayMs === 0);
      // in statements of that run's slices (rows a slice, from its worker's metrics)
      expect(report.besideApp.sqlTwin).toMatchObject({
        paceRowsPerSecond: busyPrimary?.runRowsPerSecond,
        rows: 20_000,
        ...windows,
        runRowsPerSecond: expect.any(Number),
        ofFullSpeed: expect.any(Number),
        covered: expect.any(Boolean),
      });
      const twin = report.besideApp.sqlTwin;
      if (busyPrimary?.rowsPerSlice === undefined) expect(twin).toMatchObject({ rangeFrom: "MAX_SLICE_ROWS" });
      else expect(twin).toMatchObject({ rangeFrom: "busy-primary slices", rangeRows: busyPrimary.rowsPerSlice });
      expect(report.besideApp.sqlTwin.beside.transactions).toBeGreaterThan(0);
      expect(result.stderr).toMatch(/SQL twin at the busy-primary pace/);
      // throttling on against off, the same rows, alternated
      expect(report.besideApp.throttle).toMatchObject({
        rows: 5_000,
        ratio: expect.any(Number),
        rounds: { on: [expect.any(Number)], off: [expect.any(Number)] },
      });
      expect(result.stderr).toMatch(/measure\s+ours\s+reference\s+ratio\s+target/);
    },
    BENCH_MS,
  );
});
