import { readMigrations } from "../../src/db/migrate";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { dropLogin, type Login, loginAs } from "../support/logins";
import { seed, startWorker } from "../support/processes";

function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() !== "");
}

/** A worker pod's command, as the worker role: it may not read schema_migrations. */
const runWorker = (login: Login) => startWorker(["--once"], { DATABASE_URL: login.url, CHUNK_SIZE: "100" }).exited;

describe("the schema-version gate, read by the worker role", () => {
  let db: TestDatabase;
  let worker: Login;
  let newest: string;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    expect((await seed(["roles"], { DATABASE_URL: db.url })).code).toBe(0);
    await insertUsers(db.pool, 200);
    worker = await loginAs(db, "batch_worker");
    newest = (await readMigrations()).at(-1)?.name ?? "";
  });
  afterAll(async () => {
    await dropLogin(db, worker);
    await db.drop();
  });

  it("lets a worker run against the schema its code needs", async () => {
    const result = await runWorker(worker);
    expect(result.stderr).not.toMatch(/"level":(50|60)/);
    expect(result.code).toBe(0);
  });

  it("ends a worker whose code needs a newer schema with one line and EX_TEMPFAIL (75)", async () => {
    const { rows } = await db.pool.query(
      "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations) RETURNING *",
    );
    try {
      const result = await runWorker(worker);
      expect(result.code).toBe(75);
      expect(stderrLines(result.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: the database at .+ has the pg-batch schema at migration \\d+_\\w+; this program needs ${newest}: run this release's migration \\(npm run seed -- schema\\)$`,
          ),
        ),
      ]);
    } finally {
      await db.pool.query(
        "INSERT INTO schema_migrations SELECT * FROM json_populate_record(NULL::schema_migrations, $1)",
        [JSON.stringify(rows[0])],
      );
    }
  });

  it("ends a worker on a schema from before the gate with one line and EX_TEMPFAIL (75)", async () => {
    await db.pool.query("ALTER FUNCTION batch_schema_version() RENAME TO batch_schema_version_kept");
    try {
      const result = await runWorker(worker);
      expect(result.code).toBe(75);
      expect(stderrLines(result.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: the database at .+ has the pg-batch schema of a release without batch_schema_version\\(\\); this program needs ${newest}: run this release's migration \\(npm run seed -- schema\\)$`,
          ),
        ),
      ]);
    } finally {
      await db.pool.query("ALTER FUNCTION batch_schema_version_kept() RENAME TO batch_schema_version");
    }
  });

  it("lets an older worker run against a newer compatible schema, and refuses it where a newer migration is breaking", async () => {
    await db.pool.query(
      "INSERT INTO schema_migrations (version, name, checksum, breaking) VALUES (9999, '9999_next_release', '-', false)",
    );
    try {
      const compatible = await runWorker(worker);
      expect(compatible.stderr).not.toMatch(/"level":(50|60)/);
      expect(compatible.code).toBe(0);

      await db.pool.query("UPDATE schema_migrations SET breaking = true WHERE version = 9999");
      const refused = await runWorker(worker);
      expect(refused.code).toBe(1);
      expect(stderrLines(refused.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: the database at .+ has the pg-batch schema at migration 9999_next_release, which programs from before its migration 9999_next_release cannot use \\(this one knows up to ${newest}\\): run this release's image$`,
          ),
        ),
      ]);
    } finally {
      await db.pool.query("DELETE FROM schema_migrations WHERE version = 9999");
    }
  });
});
