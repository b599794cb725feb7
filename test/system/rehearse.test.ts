import { useTestDatabase } from "../support/database";
import { seed } from "../support/processes";

/** Rehearse first (docs/operations.md): a dry run through the CLI. */

const ROWS = 2000;

/** The users table as one checksum, with the count of runs and queue jobs. */
async function everything(pool: import("pg").Pool): Promise<string> {
  const { rows } = await pool.query(
    `SELECT (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u) AS users,
            (SELECT count(*) FROM batch_jobs) AS runs, (SELECT count(*) FROM graphile_worker.jobs) AS jobs`,
  );
  return JSON.stringify(rows[0]);
}

describe("seed enqueue --dry-run", () => {
  const db = useTestDatabase({ users: ROWS });

  beforeAll(async () => {
    // the sample of 100 takes keys 1, 21, 41, ...: ten of them are these
    await db.pool.query("UPDATE users SET salary = NULL WHERE id % 200 = 1");
    await db.pool.query("ANALYZE users");
  });

  it("reports what a run would do, grouped errors and results, and changes no row", async () => {
    const before = await everything(db.pool);
    const text = await seed(["enqueue", "--dry-run", "--sample", "100"], { DATABASE_URL: db.url });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("dry run of job users: 100 sampled rows, nothing written");
    expect(text.stdout).toContain("would complete 90, would fail 10");
    expect(text.stdout).toMatch(/^10 +salary missing or negative: null +1 201 401 601 801$/m);

    const json = await seed(["enqueue", "--dry-run", "--sample", "100", "--json"], { DATABASE_URL: db.url });
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ job: "users", dryRun: true, sampled: 100, wouldComplete: 90, wouldFail: 10 });
    expect(report.errors).toEqual([
      { error: "salary missing or negative: null", count: 10, keys: ["1", "201", "401", "601", "801"] },
    ]);
    expect(report.results[0]).toEqual({
      key: "21",
      result: { email_normalized: "user.21@example.com", segment: "middle-low" },
    });
    expect(report.recordsPerSecond).toBeGreaterThan(0);
    expect(await everything(db.pool)).toBe(before);

    // nothing recorded: the real run starts as if there had been no dry run
    const started = await seed(["enqueue"], { DATABASE_URL: db.url });
    expect(started.code).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({ created: true, rows: ROWS });
  });
});
