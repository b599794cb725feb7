import fs from "node:fs/promises";
import path from "node:path";
import { useTestDatabase } from "../support/database";
import { ROOT, seed } from "../support/processes";

describe("monitoring SQL", () => {
  const db = useTestDatabase({ users: 1000 });

  async function backlog(): Promise<{ rows_left: number; chunks_left: number }> {
    const { rows } = await db.pool.query("SELECT rows_left::int, chunks_left::int FROM batch_backlog");
    return rows[0];
  }

  it("counts the work left in the chunks of running runs, in rows and in chunks", async () => {
    expect(await backlog()).toEqual({ rows_left: 0, chunks_left: 0 });
    expect((await seed(["enqueue", "--batch-name", "b"], { DATABASE_URL: db.url, CHUNK_SIZE: "100" })).code).toBe(0);
    expect(await backlog()).toEqual({ rows_left: 1000, chunks_left: 10 });
    const { rows } = await db.pool.query("SELECT chunk_no, planned_rows FROM batch_chunks ORDER BY chunk_no LIMIT 2");
    // a chunk part done counts what it has left; a chunk done counts nothing
    await db.pool.query("UPDATE batch_chunks SET rows_completed = 40, rows_failed = 5 WHERE chunk_no = $1", [
      rows[0].chunk_no,
    ]);
    await db.pool.query("UPDATE batch_chunks SET status = 'done', rows_completed = planned_rows WHERE chunk_no = $1", [
      rows[1].chunk_no,
    ]);
    expect(await backlog()).toEqual({ rows_left: 1000 - 45 - rows[1].planned_rows, chunks_left: 9 });
    await db.pool.query("UPDATE batch_jobs SET status = 'paused' WHERE batch_name = 'b'");
    expect(await backlog()).toEqual({ rows_left: 0, chunks_left: 0 });
  });

  it("reads no users row to do so: its plan does not touch the table", async () => {
    const { rows } = await db.pool.query("EXPLAIN (FORMAT JSON) SELECT rows_left FROM batch_backlog");
    const plan = JSON.stringify(rows[0]["QUERY PLAN"]);
    expect(plan).toContain('"Relation Name":"batch_jobs"');
    expect(plan).not.toContain('"Relation Name":"users"');
  });

  it("runs every query of sql/monitoring.sql", async () => {
    const text = await fs.readFile(path.join(ROOT, "sql/monitoring.sql"), "utf8");
    const statements = text
      .split(/;\s*$/m)
      .map((statement) => statement.replace(/^--.*$/gm, "").trim())
      .filter(Boolean);
    expect(statements.length).toBeGreaterThanOrEqual(12);
    for (const statement of statements) await db.pool.query(statement);
  });
});
