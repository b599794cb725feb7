import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTestDatabase, statusCounts, type TestDatabase, useTestDatabase } from "../support/database";
import { ROOT, run, seed, stderrLines, WORKER_BIN } from "../support/processes";
import { runByName } from "../support/runs";

const ROWS = 1500;

/** graphile-worker as a newcomer runs it: no flags, from the project root unless told otherwise. */
function worker(env: Record<string, string | undefined>, cwd = ROOT) {
  return run(WORKER_BIN, ["--once"], env, cwd);
}

describe("graphile-worker without flags, from the project root", () => {
  const db = useTestDatabase({ users: ROWS });

  it("finds the project's configuration and tasks, and --once drains an enqueued run", async () => {
    const env = { DATABASE_URL: db.url, CHUNK_SIZE: "500" };
    expect((await seed(["enqueue", "--batch-name", "no-flags"], env)).code).toBe(0);
    const result = await worker(env);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain("No runnable tasks");
    expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
    expect(await runByName(db.pool, "no-flags")).toMatchObject({ status: "completed", processed_records: ROWS });
  });
});

describe("graphile-worker that cannot start: a non-zero exit and one line on stderr", () => {
  it("says the database cannot be reached", async () => {
    const result = await worker({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/postgres" });
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      "error: cannot connect to the database at 127.0.0.1:1/postgres: connect ECONNREFUSED 127.0.0.1:1",
    ]);
  });

  describe("on a database without the project's schema", () => {
    let empty: TestDatabase;
    beforeAll(async () => {
      empty = await createTestDatabase();
    });
    afterAll(() => empty.drop());

    it("says how to create the schema, and writes nothing to the database", async () => {
      const result = await worker({ DATABASE_URL: empty.url });
      expect(result.code).toBe(1);
      expect(stderrLines(result.stderr)).toEqual([
        expect.stringMatching(
          /^error: the database at .+ lacks the pg-batch schema \(.+\): run npm run seed -- schema$/,
        ),
      ]);
      // not even graphile-worker's own schema: the check comes before it connects
      const { rows } = await empty.pool.query(
        "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'graphile_worker'",
      );
      expect(rows[0].n).toBe(0);
    });
  });

  it("says DATABASE_URL is missing, with exit status 2", async () => {
    const result = await worker({});
    expect(result.code).toBe(2);
    expect(stderrLines(result.stderr)).toEqual(["configuration error: DATABASE_URL (or PG_DSN) must be set"]);
  });

  it("says to build when the compiled configuration is missing", async () => {
    // the root configuration in a directory of its own, without dist/ beside it
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unbuilt-"));
    try {
      fs.copyFileSync(path.join(ROOT, "graphile.config.js"), path.join(dir, "graphile.config.js"));
      const result = await worker({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/postgres" }, dir);
      expect(result.code).toBe(1);
      expect(stderrLines(result.stderr)).toEqual([expect.stringMatching(/^error: .*not built.*: run npm run build$/)]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
