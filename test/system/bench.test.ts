import path from "node:path";
import { PROFILES } from "../../bench/beside-app";
import { lastJsonLine, ROOT, run } from "../support/processes";

/** The parts of the report this test reads. */
interface Report extends Record<string, unknown> {
  atScale: Record<string, unknown>;
  ioBound: { cases: ({ delayMs: number } & Record<string, unknown>)[] };
  scaleOut: { rows: ({ processes: number } & Record<string, unknown>)[] };
  peers: Record<string, Record<string, unknown>>;
  besideApp: { cases: ({ profile: string; delayMs: number } & Record<string, unknown>)[] } & Record<string, unknown>;
  sectionSeconds: Record<string, number>;
}

describe("npm run bench -- --quick", () => {
  it("still runs end to end and reports every measure", async () => {
    const admin = process.env.TEST_ADMIN_DATABASE_URL as string;
    const result = await run(process.execPath, [path.join(ROOT, "dist/bench/bench.js"), "--quick"], {
      DATABASE_URL: admin,
    });
    expect(result.code).toBe(0);
    const report = lastJsonLine(result.stdout) as Report;
    expect(Object.keys(report).sort()).toEqual(
      [
        "atScale",
        "autoscalingQuery",
        "besideApp",
        "ceiling",
        "generate",
        "import",
        "ioBound",
        "loadAverage",
        "peakRssMb",
        "peers",
        "processing",
        "queueLatencyMs",
        "rateLimit",
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
    // the rate limit: unlimited, far above the worker's pace (no slower), near it (held to it)
    expect(report.rateLimit).toMatchObject({
      unlimited: expect.any(Number),
      farAbove: { perSecond: 1_000_000, rowsPerSecond: expect.any(Number), ratio: expect.any(Number) },
      near: { perSecond: expect.any(Number), rowsPerSecond: expect.any(Number), ofLimit: expect.any(Number) },
    });

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
      [
        "at-scale",
        "autoscaling",
        "beside-app",
        "io-bound",
        "latency",
        "memory",
        "peers",
        "processing+ceiling",
        "rate-limit",
        "scale-out",
      ].sort(),
    );
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
      lockWaits: expect.any(Number),
      longestLockWaitMs: expect.any(Number),
    };
    for (const c of report.besideApp.cases) {
      expect(c).toMatchObject({ alone: app, beside: app, runRowsPerSecond: expect.any(Number) });
      expect((c.alone as { transactions: number }).transactions).toBeGreaterThan(0);
      expect((c.beside as { transactions: number }).transactions).toBeGreaterThan(0);
    }
    // throttling on against off, the same rows, alternated
    expect(report.besideApp.throttle).toMatchObject({
      rows: 5_000,
      ratio: expect.any(Number),
      rounds: { on: [expect.any(Number)], off: [expect.any(Number)] },
    });
    expect(result.stderr).toMatch(/measure\s+ours\s+reference\s+ratio\s+target/);
    // every section, each starting worker processes and commands: minutes on a busy machine
  }, 360_000);

  it("runs only the sections asked for", async () => {
    const admin = process.env.TEST_ADMIN_DATABASE_URL as string;
    const result = await run(
      process.execPath,
      [path.join(ROOT, "dist/bench/bench.js"), "--quick", "--only", "autoscaling"],
      { DATABASE_URL: admin },
    );
    expect(result.code).toBe(0);
    const report = lastJsonLine(result.stdout);
    expect(Object.keys(report).sort()).toEqual(["autoscalingQuery", "loadAverage", "sectionSeconds"]);
  });

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
