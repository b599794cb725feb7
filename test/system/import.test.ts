import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CSV_HEADER } from "../../seed/user-rows";
import { type TestDatabase, useTestDatabase } from "../support/database";
import { dropLogin, loginAs } from "../support/logins";
import { logLines, SEED_CLI, seed, start, startWorker } from "../support/processes";
import { waitFor } from "../support/runs";

/** CSV text with a header and rows for ids first..first+count-1; `edit` changes single lines (1-based file lines). */
function csv(first: number, count: number, edit: Record<number, string> = {}): string {
  const lines = [CSV_HEADER.trim()];
  for (let id = first; id < first + count; id++) {
    lines.push(`${id},User ${id},user.${id}@example.com,${20 + (id % 50)},${40000 + id},2025-06-01 12:00:00,pending,`);
  }
  for (const [line, text] of Object.entries(edit)) lines[Number(line) - 1] = text;
  return `${lines.join("\n")}\n`;
}

/** A line of the test files' shape, with its own id and email. */
const row = (id: number, email: string) => `${id},User ${id},${email},30,1000,2025-06-01 12:00:00,pending,`;

/** CSV text with a header and these lines. */
const lines = (...rows: string[]) => `${[CSV_HEADER.trim(), ...rows].join("\n")}\n`;

const DEFERRED = "import: users is empty: its unique indexes are built after the load";
const RESUMED =
  "import: an earlier import was interrupted before it built users' unique indexes: building them at the end";
const messages = (stderr: string) => logLines(stderr).map((line) => line.msg);
/** The lines of stderr that tell a problem: log lines below warning level aside. */
const problems = (stderr: string) =>
  stderr.split("\n").filter((line) => line !== "" && !(line.startsWith("{") && JSON.parse(line).level < 40));

async function countRows(db: TestDatabase, where = "true"): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM users WHERE ${where}`);
  return rows[0].n;
}

describe("seed import", () => {
  const db = useTestDatabase({ each: true });
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "import-"));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

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
    // one line of failure naming every file and line
    const failure = problems(result.stderr);
    expect(failure).toHaveLength(1);
    expect(failure[0]).toMatch(/^error: 5 file\(s\) failed to import, none of their rows loaded \(fix them/);
    for (const error of errors) expect(failure[0]).toContain(error);

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
  describe("into an empty table", () => {
    /** users' indexes, its unique constraints, and the indexes an import left to build. */
    async function indexState() {
      const { rows: indexes } = await db.pool.query(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY 1",
      );
      const { rows: unique } = await db.pool.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype IN ('p', 'u') ORDER BY 1",
      );
      const { rows: deferred } = await db.pool.query("SELECT index_name FROM import_deferred_indexes ORDER BY 1");
      return {
        indexes: indexes.map((r) => r.indexname),
        unique: unique.map((r) => r.conname),
        deferred: deferred.map((r) => r.index_name),
      };
    }
    const built = {
      indexes: ["users_email_key", "users_pkey"],
      unique: ["users_email_key", "users_pkey"],
      deferred: [],
    };

    async function importedFiles(): Promise<string[]> {
      const { rows } = await db.pool.query("SELECT file_name FROM imported_files ORDER BY 1");
      return rows.map((r) => r.file_name);
    }

    /**
     * Holds the import of `file` back: an open transaction holds its imported_files row, which
     * an import's claim of the file waits for. Rolled back by the function it returns.
     */
    async function holdBack(file: string): Promise<() => Promise<void>> {
      const blocker = await db.pool.connect();
      await blocker.query("BEGIN");
      await blocker.query("INSERT INTO imported_files (file_name, bytes, rows) VALUES ($1, 0, 0)", [file]);
      return async () => {
        await blocker.query("ROLLBACK");
        blocker.release();
      };
    }

    it("builds the email index after the load, and refuses whole the later file of a duplicate email, by its line", async () => {
      await fs.writeFile(path.join(dir, "a.csv"), csv(1, 100));
      await fs.writeFile(path.join(dir, "b.csv"), csv(101, 100, { 7: row(106, "user.5@example.com") }));
      await fs.writeFile(path.join(dir, "c.csv"), csv(201, 100));
      const result = await importDir();
      expect(result.code).toBe(1);
      expect(messages(result.stderr)).toContain(DEFERRED);
      expect(JSON.parse(result.stdout)).toMatchObject({
        imported: 2,
        rows: 200,
        failed: ["b.csv:7: duplicate value, (email)=(user.5@example.com) already exists."],
      });
      expect(result.stderr).toContain("error: 1 file(s) failed to import, none of their rows loaded");
      expect(await countRows(db)).toBe(200);
      expect(await countRows(db, "id BETWEEN 101 AND 200")).toBe(0);
      expect(await importedFiles()).toEqual(["a.csv", "c.csv"]);
      expect(await indexState()).toEqual(built);
      const { rows: runs } = await db.pool.query("SELECT status, processed_records, error_message FROM batch_jobs");
      expect(runs).toEqual([
        { status: "failed", processed_records: 200, error_message: expect.stringMatching(/^b\.csv:7: duplicate/) },
      ]);
      await expect(
        db.pool.query("INSERT INTO users (name, email) VALUES ('Twin', 'user.5@example.com')"),
      ).rejects.toThrow(/users_email_key/);

      // fixed, it imports into a table with rows: as before, the index in place all along
      await fs.writeFile(path.join(dir, "b.csv"), csv(101, 100));
      await fs.writeFile(path.join(dir, "d.csv"), csv(301, 100, { 3: row(302, "user.150@example.com") }));
      // one file at a time: with the index in place, COPY refuses whichever of two clashing files
      // commits later, and b.csv and d.csv would race
      const fixed = await seed(["import", "--dir", dir, "--concurrency", "1"], { DATABASE_URL: db.url });
      expect(fixed.code).toBe(1);
      expect(messages(fixed.stderr)).not.toContain(DEFERRED);
      expect(JSON.parse(fixed.stdout)).toMatchObject({
        imported: 1,
        skipped: 2,
        rows: 100,
        failed: [
          expect.stringMatching(/^d\.csv:3: duplicate value, \(email\)=\(user\.150@example\.com\) already exists/),
        ],
      });
      expect(await countRows(db)).toBe(300);
      expect(await indexState()).toEqual(built);
    });

    it("refuses a duplicate email within a file, and a file whose emails a refused file held is kept", async () => {
      // b repeats an email of a, and c one of b: b goes, so c's email is not taken, as when COPY refuses b
      await fs.writeFile(path.join(dir, "a.csv"), csv(1, 100));
      await fs.writeFile(
        path.join(dir, "b.csv"),
        `"id","name","email","age","salary","created_at","batch_status","batch_id"\n${[
          row(101, '"b.101@example.com"'),
          row(102, '"b.""102""@example.com"'),
          row(103, '"user.7@example.com"'),
        ].join("\n")}\n`,
      );
      await fs.writeFile(path.join(dir, "c.csv"), csv(201, 10, { 4: row(203, '"b.""102""@example.com"') }));
      await fs.writeFile(path.join(dir, "d.csv"), csv(301, 10, { 6: row(305, "user.302@example.com") }));
      const result = await importDir();
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stdout)).toMatchObject({
        imported: 2,
        rows: 110,
        failed: [
          "b.csv:4: duplicate value, (email)=(user.7@example.com) already exists.",
          "d.csv:6: duplicate value, (email)=(user.302@example.com) already exists.",
        ],
      });
      expect(await importedFiles()).toEqual(["a.csv", "c.csv"]);
      expect(await countRows(db, `email = 'b."102"@example.com'`)).toBe(1);
      expect(await indexState()).toEqual(built);
    });

    it("builds the primary key after the load too, and refuses whole the later file of a duplicate id, by its line", async () => {
      await fs.writeFile(path.join(dir, "a.csv"), csv(1, 100));
      await fs.writeFile(path.join(dir, "b.csv"), csv(101, 100, { 10: row(50, "other.50@example.com") }));
      await fs.writeFile(path.join(dir, "c.csv"), csv(201, 100));
      // the same file again under another name: every row the same id and email as one of a.csv
      await fs.copyFile(path.join(dir, "a.csv"), path.join(dir, "d.csv"));
      // an email of c.csv, then an id of a.csv: the first line is named, as COPY would
      await fs.writeFile(
        path.join(dir, "e.csv"),
        csv(301, 10, { 3: row(302, "user.250@example.com"), 5: row(1, "e.1@example.com") }),
      );
      // four files loading at once: the file order decides, as one file at a time with the key in place
      const result = await importDir();
      expect(result.code).toBe(1);
      expect(messages(result.stderr)).toContain(DEFERRED);
      expect(JSON.parse(result.stdout)).toMatchObject({
        imported: 2,
        rows: 200,
        failed: [
          "b.csv:10: duplicate value, (id)=(50) already exists.",
          "d.csv:2: duplicate value, (id)=(1) already exists.",
          "e.csv:3: duplicate value, (email)=(user.250@example.com) already exists.",
        ],
      });
      expect(await importedFiles()).toEqual(["a.csv", "c.csv"]);
      // a.csv's rows, not one taken with its twins
      expect(await countRows(db, "id BETWEEN 1 AND 100")).toBe(100);
      expect(await countRows(db, "id BETWEEN 101 AND 200")).toBe(0);
      expect(await countRows(db)).toBe(200);
      expect(await indexState()).toEqual(built);
      await expect(
        db.pool.query("INSERT INTO users (id, name, email) VALUES (50, 'Twin', 'twin@example.com')"),
      ).rejects.toThrow(/users_pkey/);
    });

    /**
     * Imports `dir`, `concurrency` files at a time, and SIGKILLs the import once the files
     * `committed` are imported while the transaction loading `held` is open: the import is
     * interrupted there whatever the machine's speed.
     */
    async function killImport(held: string, committed: string[], concurrency: number): Promise<void> {
      const release = await holdBack(held);
      try {
        const importing = start(
          process.execPath,
          [SEED_CLI, "import", "--dir", dir, "--concurrency", String(concurrency)],
          { DATABASE_URL: db.url },
        );
        await waitFor(`${committed.join(", ")} imported`, async () => {
          const imported = await importedFiles();
          return committed.every((file) => imported.includes(file));
        });
        importing.child.kill("SIGKILL");
        expect((await importing.exited).signal).toBe("SIGKILL");
      } finally {
        await release();
      }
    }
    const interrupted = { indexes: [], unique: [], deferred: ["users_email_key", "users_pkey"] };

    it("resumes an import killed after the index was dropped: the rest loaded, the index built, no file twice", async () => {
      for (const [n, name] of ["a.csv", "b.csv", "c.csv"].entries()) {
        await fs.writeFile(path.join(dir, name), csv(n * 1000 + 1, 1000));
      }
      await killImport("b.csv", ["a.csv"], 1);
      expect(await indexState()).toEqual(interrupted);
      expect(await countRows(db)).toBe(1000);

      const again = await importDir();
      expect(again.code).toBe(0);
      expect(messages(again.stderr)).toContain(RESUMED);
      expect(JSON.parse(again.stdout)).toMatchObject({ imported: 2, skipped: 1, rows: 2000, failed: [] });
      expect(await importedFiles()).toEqual(["a.csv", "b.csv", "c.csv"]);
      expect(await countRows(db)).toBe(3000);
      expect(await indexState()).toEqual(built);
    });

    /** Four files of 10,000 users, their import killed after files 1, 2 and 4 committed, while file 3 loads. */
    async function interruptFourFiles(): Promise<void> {
      for (const n of [1, 2, 3, 4]) {
        await fs.writeFile(path.join(dir, `users-0000${n}.csv`), csv((n - 1) * 10_000 + 1, 10_000));
      }
      await killImport("users-00003.csv", ["users-00001.csv", "users-00002.csv", "users-00004.csv"], 3);
      expect(await indexState()).toEqual(interrupted);
      expect(await countRows(db)).toBe(30_000);
    }

    it("takes the rows an interrupted import committed as the key in place would have: its rerun refuses only files it loads", async () => {
      await interruptFourFiles();
      // before users-00004.csv in name order: its ids with other emails, and its emails with other ids
      const ids = Array.from({ length: 10 }, (_, i) => 30_001 + i);
      await fs.writeFile(
        path.join(dir, "users-00004-ids.csv"),
        lines(...ids.map((id) => row(id, `other.${id}@example.com`))),
      );
      await fs.writeFile(
        path.join(dir, "users-00004-emails.csv"),
        lines(...ids.map((id) => row(id + 10_000, `user.${id}@example.com`))),
      );
      // an email of users-00003.csv, which the rerun loads too: the later file in name order goes, as before
      await fs.writeFile(
        path.join(dir, "users-00005.csv"),
        csv(40_011, 10, { 3: row(40_012, "user.20002@example.com") }),
      );

      const rerun = await importDir();
      expect(rerun.code).toBe(1);
      expect(messages(rerun.stderr)).toContain(RESUMED);
      expect(JSON.parse(rerun.stdout)).toMatchObject({
        imported: 1,
        skipped: 3,
        rows: 10_000,
        failed: [
          "users-00004-emails.csv:2: duplicate value, (email)=(user.30001@example.com) already exists.",
          "users-00004-ids.csv:2: duplicate value, (id)=(30001) already exists.",
          "users-00005.csv:3: duplicate value, (email)=(user.20002@example.com) already exists.",
        ],
      });
      // every committed row kept, and nothing of the refused files
      expect(await importedFiles()).toEqual([
        "users-00001.csv",
        "users-00002.csv",
        "users-00003.csv",
        "users-00004.csv",
      ]);
      expect(await countRows(db)).toBe(40_000);
      expect(await countRows(db, "email = 'user.' || id || '@example.com'")).toBe(40_000);
      expect(await indexState()).toEqual(built);

      await fs.rm(path.join(dir, "users-00004-ids.csv"));
      await fs.rm(path.join(dir, "users-00004-emails.csv"));
      await fs.writeFile(path.join(dir, "users-00005.csv"), csv(40_011, 10));
      const fixed = await importDir();
      expect(fixed.code).toBe(0);
      expect(JSON.parse(fixed.stdout)).toMatchObject({ imported: 1, skipped: 4, rows: 10, failed: [] });
      expect(await countRows(db)).toBe(40_010);
    });

    it("says, after an interrupted import, that the build of users' key is pending, at enqueue and at worker start", async () => {
      await interruptFourFiles();
      const pending =
        "error: job users: key public.users.id awaits its unique index, whose build an interrupted import " +
        "deferred: run `npm run seed -- import` again on its directory, as the owner of public.users, to finish it";
      const enqueued = await seed(["enqueue"], { DATABASE_URL: db.url });
      expect(enqueued.code).toBe(1);
      expect(problems(enqueued.stderr)).toEqual([pending]);
      const worker = await startWorker(["--once"], { DATABASE_URL: db.url }).exited;
      expect(worker.code).toBe(1);
      expect(problems(worker.stderr)).toEqual([pending]);

      expect((await importDir()).code).toBe(0);
      expect((await seed(["enqueue"], { DATABASE_URL: db.url })).code).toBe(0);
    });

    it("refuses the rerun of an interrupted import before it loads a file when its role cannot build the indexes", async () => {
      await interruptFourFiles();
      expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
      // the roles' setup hands batch_admin the tables its migrations made: here users stays another's
      await db.pool.query("ALTER TABLE users OWNER TO CURRENT_USER");
      const { rows } = await db.pool.query("SELECT tableowner FROM pg_tables WHERE tablename = 'users'");
      const owner = rows[0].tableowner;
      expect(owner).not.toBe("batch_admin");
      const admin = await loginAs(db, "batch_admin");
      try {
        const refused = await seed(["import", "--dir", dir], { DATABASE_URL: admin.url });
        expect(refused.code).toBe(1);
        expect(problems(refused.stderr)).toEqual([
          "error: an interrupted import left users' unique indexes to build, which only the table's owner can do: " +
            `run \`npm run seed -- import\` again as ${owner}, or as a member of that role`,
        ]);
        expect(await importedFiles()).toEqual(["users-00001.csv", "users-00002.csv", "users-00004.csv"]);
        expect(await countRows(db)).toBe(30_000);
        expect(await indexState()).toEqual(interrupted);
        const { rows: runs } = await db.pool.query(
          "SELECT status, error_message FROM batch_jobs ORDER BY id DESC LIMIT 1",
        );
        expect(runs).toEqual([
          { status: "failed", error_message: expect.stringMatching(/^before loading: an interrupted import left/) },
        ]);

        // a member of the owning role finishes it
        await db.pool.query("ALTER TABLE users OWNER TO batch_admin");
        const resumed = await seed(["import", "--dir", dir], { DATABASE_URL: admin.url });
        expect(resumed.code).toBe(0);
        expect(JSON.parse(resumed.stdout)).toMatchObject({ imported: 1, skipped: 3, rows: 10_000, failed: [] });
        expect(await indexState()).toEqual(built);
      } finally {
        await dropLogin(db, admin);
      }
    });

    it("runs imports one at a time: the second waits for the first to build the index", async () => {
      const other = await fs.mkdtemp(path.join(os.tmpdir(), "import-other-"));
      try {
        await fs.writeFile(path.join(dir, "a.csv"), csv(1, 100));
        await fs.writeFile(path.join(dir, "b.csv"), csv(101, 100));
        await fs.writeFile(path.join(other, "c.csv"), csv(201, 100, { 2: row(201, "user.150@example.com") }));
        const release = await holdBack("b.csv");
        let first: ReturnType<typeof start> | undefined;
        let second: ReturnType<typeof start> | undefined;
        try {
          first = start(process.execPath, [SEED_CLI, "import", "--dir", dir], { DATABASE_URL: db.url });
          await waitFor("a.csv imported", async () => (await importedFiles()).includes("a.csv"));
          second = start(process.execPath, [SEED_CLI, "import", "--dir", other], { DATABASE_URL: db.url });
          const waiting = second;
          await waitFor("the second import to wait", async () =>
            waiting.output.stderr.includes('"msg":"import: waiting for another import to end"'),
          );
        } finally {
          await release();
        }
        const [one, two] = await Promise.all([first.exited, second.exited]);
        expect(one.code).toBe(0);
        expect(messages(one.stderr)).toContain(DEFERRED);
        // the first import's index in place when the second loads: c's duplicate refused by COPY
        expect(two.code).toBe(1);
        expect(messages(two.stderr)).not.toContain(DEFERRED);
        expect(JSON.parse(two.stdout).failed).toEqual([
          expect.stringMatching(/^c\.csv:2: duplicate value, \(email\)=\(user\.150@example\.com\) already exists/),
        ]);
        expect(await countRows(db)).toBe(200);
        expect(await indexState()).toEqual(built);
      } finally {
        await fs.rm(other, { recursive: true, force: true });
      }
    });
  });
});
