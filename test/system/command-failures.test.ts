import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { useTestDatabase } from "../support/database";
import { BATCH_CLI, type Finished, MAIN, run, seed, status, stderrLines, batch as steer } from "../support/processes";

/** Expected failures of the commands: exactly one line on stderr, no stack, and the documented status. */

const UNREACHABLE = "postgres://postgres@127.0.0.1:1/postgres";

describe("a database that cannot be reached", () => {
  const env = { DATABASE_URL: UNREACHABLE };
  it.each<[string, () => Promise<Finished>]>([
    ["seed schema", () => seed(["schema"], env)],
    ["seed enqueue", () => seed(["enqueue"], env)],
    ["batch history", () => steer(["history", "nightly"], env)],
    ["status", () => status([], env)],
    ["npm start", () => run(process.execPath, [MAIN, "--rows", "10"], env)],
  ])("%s says so in one line, with status 1", async (_name, command) => {
    const result = await command();
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      "error: cannot connect to the database at 127.0.0.1:1/postgres: connect ECONNREFUSED 127.0.0.1:1",
    ]);
  });
});

describe("a database without the pg-batch schema", () => {
  const empty = useTestDatabase({ migrated: false });
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "no-schema-"));
    await fs.writeFile(path.join(dir, "users.csv"), "id,name,email,age,salary,created_at,batch_status,batch_id\n");
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it.each<[string, string[], (args: string[], env: Record<string, string>) => Promise<Finished>]>([
    ["seed enqueue", ["enqueue"], seed],
    ["seed roles", ["roles"], seed],
    ["seed import", ["import"], seed],
    ["batch pause", ["pause", "nightly"], steer],
    ["batch history", ["history", "nightly"], steer],
    ["status", [], status],
    ["status of a run", ["nightly"], status],
  ])("%s says to create it, in one line, with status 1, writing nothing", async (_name, args, command) => {
    const result = await command(args[0] === "import" ? [...args, "--dir", dir] : args, { DATABASE_URL: empty.url });
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      expect.stringMatching(
        /^error: the database at 127\.0\.0\.1:\d+\/test_\w+ lacks the pg-batch schema \(no table \w+\): run npm run seed -- schema$/,
      ),
    ]);
    const { rows } = await empty.pool.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(rows[0].n).toBe(0);
  });
});

describe("a database whose schema lacks the newest migration", () => {
  const db = useTestDatabase();
  beforeAll(async () => {
    await db.pool.query("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)");
  });

  it("status says to apply it, in one line, with status 75 (EX_TEMPFAIL: the release's migration may yet run)", async () => {
    const result = await status([], { DATABASE_URL: db.url });
    expect(result.code).toBe(75);
    expect(stderrLines(result.stderr)).toEqual([
      expect.stringMatching(
        /^error: the database at .+ has the pg-batch schema without migration \d+_\w+, which this program needs: run this release's migration \(npm run seed -- schema\)$/,
      ),
    ]);
  });
});

describe("directories that cannot be used", () => {
  const db = useTestDatabase();

  it("seed generate --out under a file is a bad argument: one line, status 2", async () => {
    const result = await seed(["generate", "--rows", "10", "--out", "/dev/null/x"], {});
    expect(result.code).toBe(2);
    expect(stderrLines(result.stderr)).toEqual([
      "error: cannot create the output directory /dev/null/x: ENOTDIR: not a directory, mkdir '/dev/null/x'",
    ]);
  });

  it("seed import --dir of a missing directory is a bad argument: one line, status 2, nothing recorded", async () => {
    const result = await seed(["import", "--dir", "/missing"], { DATABASE_URL: db.url });
    expect(result.code).toBe(2);
    expect(stderrLines(result.stderr)).toEqual([
      "error: cannot read the directory /missing: ENOENT: no such file or directory, scandir '/missing'",
    ]);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs");
    expect(rows[0].n).toBe(0);
  });
});

describe("output to a reader that stops reading", () => {
  const db = useTestDatabase({ users: 100 });
  beforeAll(async () => {
    expect((await seed(["enqueue", "--batch-name", "long-history"], { DATABASE_URL: db.url })).code).toBe(0);
    // a history far longer than a pipe's buffer
    await db.pool.query(
      `INSERT INTO batch_events (run_id, event, step, actor, detail)
       SELECT id, 'note', 'control', 'test', repeat('x', 200) FROM batch_jobs, generate_series(1, 2000)`,
    );
  });

  it("batch history --json | head -c 600 ends quietly, with status 0", async () => {
    const pipeline = `"${process.execPath}" "${BATCH_CLI}" history long-history --json | head -c 600 >/dev/null; exit \${PIPESTATUS[0]}`;
    const result = await run("bash", ["-c", pipeline], { DATABASE_URL: db.url });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });
});
