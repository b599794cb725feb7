import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CSV_HEADER } from "../seed/user-rows";
import { createMigratedDatabase, type TestDatabase } from "./support/database";
import { seed } from "./support/processes";

/** CSV text with a header and rows for ids first..first+count-1; `edit` changes single lines (1-based file lines). */
function csv(first: number, count: number, edit: Record<number, string> = {}): string {
  const lines = [CSV_HEADER.trim()];
  for (let id = first; id < first + count; id++) {
    lines.push(`${id},User ${id},user.${id}@example.com,${20 + (id % 50)},${40000 + id},2025-06-01 12:00:00,pending,`);
  }
  for (const [line, text] of Object.entries(edit)) lines[Number(line) - 1] = text;
  return `${lines.join("\n")}\n`;
}

async function countRows(db: TestDatabase, where = "true"): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM users WHERE ${where}`);
  return rows[0].n;
}

describe("seed import", () => {
  let db: TestDatabase;
  let dir: string;
  beforeEach(async () => {
    db = await createMigratedDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "import-"));
  });
  afterEach(async () => {
    await db.drop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const importDir = () => seed(["import", "--dir", dir, "--concurrency", "3"], { DATABASE_URL: db.url });

  it("loads generated files with COPY, records the run counting rows, and skips them when run again", async () => {
    expect((await seed(["generate", "--out", dir, "--rows", "2500", "--rows-per-file", "1000"], {})).code).toBe(0);
    const first = await importDir();
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ files: 3, imported: 3, skipped: 0, failed: [], rows: 2500 });
    expect(await countRows(db)).toBe(2500);
    expect(await countRows(db, "batch_status = 'pending' AND attempts = 0")).toBe(2500);

    const again = await importDir();
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ imported: 0, skipped: 3, rows: 0 });
    expect(await countRows(db)).toBe(2500);

    const { rows: runs } = await db.pool.query(
      "SELECT kind, status, total_records, processed_records FROM batch_jobs ORDER BY id",
    );
    expect(runs).toEqual([
      { kind: "import", status: "completed", total_records: 2500, processed_records: 2500 },
      { kind: "import", status: "completed", total_records: 0, processed_records: 0 },
    ]);
    // the id sequence continues after the imported ids
    const { rows } = await db.pool.query(
      "INSERT INTO users (name, email) VALUES ('New', 'new@example.com') RETURNING id::int",
    );
    expect(rows[0].id).toBe(2501);
  });

  it("fails a file with a bad line alone, naming the file and line, and imports it once fixed", async () => {
    await fs.writeFile(path.join(dir, "a-good.csv"), csv(1, 100));
    await fs.writeFile(path.join(dir, "b-columns.csv"), csv(101, 100, { 50: "149,Short Row,short@example.com,30" }));
    await fs.writeFile(
      path.join(dir, "c-number.csv"),
      csv(201, 100, { 3: "202,Bad Age,bad.age@example.com,abc,1000,2025-06-01 12:00:00,pending," }),
    );
    await fs.writeFile(
      path.join(dir, "d-duplicate.csv"),
      csv(301, 100, { 4: "303,Copy Cat,user.301@example.com,30,1000,2025-06-01 12:00:00,pending," }),
    );
    await fs.writeFile(
      path.join(dir, "e-existing.csv"),
      csv(401, 100, { 7: "406,Twin,user.5@example.com,30,1000,2025-06-01 12:00:00,pending," }),
    );
    await fs.writeFile(path.join(dir, "f-extra.csv"), csv(501, 10, { 2: `${csv(501, 1).split("\n")[1]},surplus` }));

    const result = await importDir();
    expect(result.code).toBe(1);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ files: 6, imported: 1, rows: 100 });
    const errors: string[] = summary.failed;
    expect(errors).toHaveLength(5);
    expect(errors[0]).toMatch(/^b-columns\.csv:50: missing data for column "salary"/);
    expect(errors[1]).toMatch(/^c-number\.csv:3: invalid input syntax for type integer: "abc" \(column age\)/);
    expect(errors[2]).toMatch(
      /^d-duplicate\.csv:4: duplicate value, \(email\)=\(user\.301@example\.com\) already exists/,
    );
    expect(errors[3]).toMatch(/^e-existing\.csv:7: duplicate value, \(email\)=\(user\.5@example\.com\) already exists/);
    expect(errors[4]).toMatch(/^f-extra\.csv:2: extra data after last expected column/);
    // one line of failure naming every file and line; log lines below warning level aside
    const problems = result.stderr
      .split("\n")
      .filter((line) => line !== "" && !(line.startsWith("{") && JSON.parse(line).level < 40));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^error: 5 file\(s\) failed to import, none of their rows loaded \(fix them/);
    for (const error of errors) expect(problems[0]).toContain(error);

    // only the good file's rows are there: nothing of a failed file is half imported
    expect(await countRows(db)).toBe(100);
    expect(await countRows(db, "id BETWEEN 1 AND 100")).toBe(100);
    const { rows: recorded } = await db.pool.query("SELECT file_name, rows::int FROM imported_files");
    expect(recorded).toEqual([{ file_name: "a-good.csv", rows: 100 }]);
    const { rows: runs } = await db.pool.query("SELECT status, processed_records, error_message FROM batch_jobs");
    expect(runs[0].status).toBe("failed");
    expect(runs[0].processed_records).toBe(100);
    expect(runs[0].error_message).toContain("b-columns.csv:50:");

    for (const name of ["b-columns.csv", "c-number.csv", "d-duplicate.csv", "e-existing.csv", "f-extra.csv"]) {
      await fs.rm(path.join(dir, name));
    }
    await fs.writeFile(path.join(dir, "b-columns.csv"), csv(101, 100));
    const fixed = await importDir();
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({ imported: 1, skipped: 1, rows: 100 });
    expect(await countRows(db)).toBe(200);
  });

  it("refuses a file whose name was imported before with other content", async () => {
    await fs.writeFile(path.join(dir, "users.csv"), csv(1, 10));
    expect((await importDir()).code).toBe(0);
    await fs.writeFile(path.join(dir, "users.csv"), csv(1, 20));
    const result = await importDir();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("users.csv: a file of this name was imported before with");
    expect(await countRows(db)).toBe(10);
  });

  it("fails clearly on a directory without CSV files", async () => {
    const result = await importDir();
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n").pop()).toBe(`error: no .csv files in ${dir}`);
  });
});
