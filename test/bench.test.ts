import path from "node:path";
import { lastJsonLine, ROOT, run } from "./support/processes";

describe("npm run bench -- --quick", () => {
  it("still runs end to end and reports every measure", async () => {
    const admin = process.env.TEST_ADMIN_DATABASE_URL as string;
    const result = await run(process.execPath, [path.join(ROOT, "dist/bench/bench.js"), "--quick"], {
      DATABASE_URL: admin,
    });
    expect(result.code).toBe(0);
    const report = lastJsonLine(result.stdout);
    expect(Object.keys(report).sort()).toEqual(
      ["autoscalingQuery", "generate", "import", "ioBound", "peakRssMb", "processing", "queueLatencyMs"].sort(),
    );
    expect(report.processing).toMatchObject({ rows: 20_000, rowsPerSecond: expect.any(Number) });
    expect(report.autoscalingQuery).toMatchObject({ pendingRows: 50_000, value: 50_000 });
    expect(result.stderr).toMatch(/measure\s+ours\s+reference\s+ratio\s+target/);
  });
});
