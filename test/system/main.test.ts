import { freePort } from "../../src/base/free-port";
import { statusCounts, useTestDatabase } from "../support/database";
import { lastJsonLine, logLines, MAIN, run, start } from "../support/processes";
import { waitFor } from "../support/runs";

describe("npm start: the whole job in one process", () => {
  it("brings its own embedded PostgreSQL when no DATABASE_URL is set, and ends with a JSON summary", async () => {
    const result = await run(process.execPath, [MAIN, "--rows", "3000", "--rows-per-file", "1000"], {});
    expect(result.code).toBe(0);
    const summary = lastJsonLine(result.stdout);
    expect(summary).toMatchObject({
      batch: "users-batch",
      status: "completed",
      total: 3000,
      completed: 3000,
      failed: 0,
    });
    expect(summary.seconds).toEqual(expect.any(Number));
    expect(summary.rowsPerSecond).toEqual(expect.any(Number));
    expect(result.stderr).toContain("starting an embedded PostgreSQL");
    // progress shows while it runs
    expect(result.stderr).toMatch(/"step":"process"/);
  });

  it("serves the dashboard over its own database with --dashboard, until Ctrl-C", async () => {
    const port = await freePort();
    const main = start(process.execPath, [MAIN, "--rows", "20000", "--rows-per-file", "5000", "--dashboard"], {
      DASHBOARD_PORT: String(port),
      PROCESS_DELAY_MS: "1",
    });
    try {
      const runs = async () => {
        const response = await fetch(`http://127.0.0.1:${port}/api/runs`).catch(() => undefined);
        return response?.ok
          ? ((await response.json()) as { runs: { id: number; name: string; status: string }[] }).runs
          : [];
      };
      // the run shows while it goes, then as it ended; the dashboard stays up after the job
      await waitFor("the run on the dashboard", async () => (await runs()).length > 0, 120_000);
      await waitFor(
        "the run completed on the dashboard",
        async () => (await runs())[0]?.status === "completed",
        120_000,
      );
      expect(main.output.stderr).toContain(`dashboard on http://localhost:${port}/`);
      await waitFor("the job to end, the dashboard staying", async () => main.output.stderr.includes("until Ctrl-C"));
      expect(main.child.exitCode).toBeNull();
      const pause = await fetch(`http://127.0.0.1:${port}/api/runs/${(await runs())[0]?.id}/pause`, {
        method: "POST",
        headers: { authorization: "Bearer a-token-npm-start-does-not-take" },
      });
      expect(pause.status).toBe(404);
      expect(await pause.json()).toEqual({
        error:
          "this dashboard is read-only: npm start -- --dashboard only watches; " +
          "npm run dashboard with DASHBOARD_TOKEN steers runs",
      });
    } finally {
      main.child.kill("SIGINT");
    }
    const exit = await main.exited;
    expect(exit.code).toBe(0);
    expect(lastJsonLine(exit.stdout)).toMatchObject({ batch: "users-batch", status: "completed", completed: 20000 });
  });

  describe("with DATABASE_URL", () => {
    const db = useTestDatabase({ migrated: false });

    it("uses that database, reports failures, and a second start returns the same run", async () => {
      const env = { DATABASE_URL: db.url, FAIL_RATE: "0.05", RETRY_DELAY_S: "0" };
      const first = await run(process.execPath, [MAIN, "--rows", "2000", "--batch-name", "demo"], env);
      expect(first.code).toBe(0);
      const summary = lastJsonLine(first.stdout);
      expect(first.stderr).not.toContain("embedded PostgreSQL");
      // stderr is not a terminal: JSON log lines only, without per-job chatter or a missing crontab
      expect(logLines(first.stderr)).toHaveLength(first.stderr.trim().split("\n").length);
      expect(first.stderr).not.toMatch(/Completed task|chunk processed|crontab/);
      const counts = await statusCounts(db.pool);
      expect(summary).toMatchObject({ batch: "demo", total: 2000, completed: counts.completed, failed: counts.failed });
      expect(counts.failed).toBeGreaterThan(0);

      const second = await run(process.execPath, [MAIN, "--rows", "2000", "--batch-name", "demo"], env);
      expect(second.code).toBe(0);
      const withoutPhases = ({ phases: _, ...rest }: Record<string, unknown>) => rest;
      expect(withoutPhases(lastJsonLine(second.stdout))).toEqual(withoutPhases(summary));
      const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users");
      expect(rows[0].n).toBe(2000);
    });
  });

  it("refuses bad arguments with status 2", async () => {
    const result = await run(process.execPath, [MAIN, "--rows", "-5"], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--rows must be a whole number of at least 1");
  });
});
