import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { useTestDatabase } from "../support/database";
import { seed, startWorker, status } from "../support/processes";

/**
 * A run over part of the job's rows through the commands: seed enqueue --keys FILE and --from/--to,
 * a real worker, and status showing the subset.
 */
describe("seed enqueue over a subset, with a worker", () => {
  const db = useTestDatabase({ users: 2000 });
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "subset-"));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  const env = () => ({ DATABASE_URL: db.url, CHUNK_SIZE: "100", WORKERS: "2", METRICS_PORT: "0", LOG_LEVEL: "warn" });

  const completedIds = async (batch: string) => {
    const { rows } = await db.pool.query<{ id: number }>(
      `SELECT u.id::int FROM users u JOIN batch_jobs r ON r.id = u.batch_id
        WHERE r.batch_name = $1 AND u.batch_status = 'completed' ORDER BY u.id`,
      [batch],
    );
    return rows.map((row) => row.id);
  };

  it("rehearses and processes the keys of a file, reports those naming no row, and status shows the subset", async () => {
    const file = path.join(dir, "ids.csv");
    await fs.writeFile(file, "17,first\n\n1500,second\n17,again\n99999,unknown\n");
    const rehearsed = await seed(["enqueue", "--dry-run", "--keys", file, "--json"], env());
    expect(rehearsed.code).toBe(0);
    const report = JSON.parse(rehearsed.stdout);
    expect(report).toMatchObject({ dryRun: true, rows: "the 3 keys of ids.csv", sampled: 2 });
    expect(await db.pool.query("SELECT 1 FROM batch_jobs")).toMatchObject({ rowCount: 0 });

    const enqueued = await seed(["enqueue", "--batch-name", "by-file", "--keys", file], env());
    expect(enqueued.code).toBe(0);
    expect(JSON.parse(enqueued.stdout)).toMatchObject({
      rows: 2,
      subset: { keysFile: "ids.csv", keys: 3 },
      unmatchedKeys: { count: 1, examples: ["99999"] },
    });
    expect(enqueued.stderr).toContain("1 key(s) of the file name no row of job users");

    const worker = await startWorker(["--once"], env()).exited;
    expect(worker.code).toBe(0);
    expect(await completedIds("by-file")).toEqual([17, 1500]);

    const shown = await status(["by-file"], env());
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("subset: the 3 keys of ids.csv");
    expect(shown.stdout).toContain("2 / 2 rows");
    const json = JSON.parse((await status(["by-file", "--json"], env())).stdout);
    expect(json).toMatchObject({ total: 2, completed: 2, subset: { keysFile: "ids.csv", keys: 3 } });
  });

  it("rehearses a key range, processes it leaving the rows around it pending; refuses a bad range", async () => {
    const rehearsed = await seed(
      ["enqueue", "--dry-run", "--from", "401", "--to", "650", "--sample", "10", "--json"],
      env(),
    );
    expect(rehearsed.code).toBe(0);
    const report = JSON.parse(rehearsed.stdout);
    expect(report).toMatchObject({ dryRun: true, rows: "keys 401 to 650", sampled: 10 });
    const shownKeys = [
      ...report.results.map((r: { key: string }) => r.key),
      ...report.errors.flatMap((e: { keys: string[] }) => e.keys),
    ];
    expect(shownKeys.length).toBeGreaterThan(0);
    for (const key of shownKeys) expect(Number(key)).toBeGreaterThanOrEqual(401);
    for (const key of shownKeys) expect(Number(key)).toBeLessThanOrEqual(650);

    const enqueued = await seed(["enqueue", "--batch-name", "by-range", "--from", "401", "--to", "650"], env());
    expect(enqueued.code).toBe(0);
    expect(JSON.parse(enqueued.stdout)).toMatchObject({ rows: 250, subset: { from: "401", to: "650" } });
    const worker = await startWorker(["--once"], env()).exited;
    expect(worker.code).toBe(0);
    expect(await completedIds("by-range")).toEqual(Array.from({ length: 250 }, (_, index) => 401 + index));
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users WHERE batch_status = 'pending'");
    expect(rows[0].n).toBe(2000 - 2 - 250);
    expect((await status(["by-range"], env())).stdout).toContain("subset: keys 401 to 650");

    const reversed = await seed(["enqueue", "--batch-name", "reversed", "--from", "9", "--to", "5"], env());
    expect(reversed.code).toBe(2);
    expect(reversed.stderr).toContain("--from 9 is above --to 5");
  });
});
