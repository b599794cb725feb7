import { readMigrations } from "../../src/db/migrate";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { dropLogin, type Login, loginAs } from "../support/logins";
import { seed, startWorker, stderrLines } from "../support/processes";

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

  /** Runs `check` with the migrations of these versions removed from schema_migrations, then puts them back. */
  async function withoutMigrations(versions: number[], check: () => Promise<void>): Promise<void> {
    const { rows } = await db.pool.query("DELETE FROM schema_migrations WHERE version = ANY($1) RETURNING *", [
      versions,
    ]);
    try {
      await check();
    } finally {
      await db.pool.query(
        "INSERT INTO schema_migrations SELECT * FROM json_populate_recordset(NULL::schema_migrations, $1)",
        [JSON.stringify(rows)],
      );
    }
  }

  const behind = (names: string) =>
    new RegExp(
      `^error: the database at .+ has the pg-batch schema without migration ${names}, which this program needs: run this release's migration \\(npm run seed -- schema\\)$`,
    );

  it("ends a worker whose code needs a newer schema with one line and EX_TEMPFAIL (75)", async () => {
    await withoutMigrations([Number.parseInt(newest, 10)], async () => {
      const result = await runWorker(worker);
      expect(result.code).toBe(75);
      expect(stderrLines(result.stderr)).toEqual([expect.stringMatching(behind(newest))]);
    });
  });

  it("ends a worker when any migration its code needs is missing, the newest one applied or not", async () => {
    const migrations = await readMigrations();
    const skipped = migrations.slice(4, 9).map((migration) => migration.name);
    await withoutMigrations(
      migrations.slice(4, 9).map((migration) => migration.version),
      async () => {
        const result = await runWorker(worker);
        expect(result.code).toBe(75);
        expect(stderrLines(result.stderr)).toEqual([
          expect.stringMatching(behind(`${skipped.slice(0, 3).join(", ")} and 2 more`)),
        ]);
      },
    );
  });

  it("ends a worker on a schema from before the gate with one line and EX_TEMPFAIL (75)", async () => {
    await db.pool.query("ALTER FUNCTION batch_applied_migrations() RENAME TO batch_applied_migrations_kept");
    try {
      const result = await runWorker(worker);
      expect(result.code).toBe(75);
      expect(stderrLines(result.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: the database at .+ has the pg-batch schema of a release without batch_applied_migrations\\(\\); this program needs ${newest}: run this release's migration \\(npm run seed -- schema\\)$`,
          ),
        ),
      ]);
    } finally {
      await db.pool.query("ALTER FUNCTION batch_applied_migrations_kept() RENAME TO batch_applied_migrations");
    }
  });

  it("lets an older worker run beside migrations it does not know, and refuses it where one of them is breaking", async () => {
    // a newer release's migrations, one numbered below this code's newest (a fix merged late)
    await db.pool.query(
      `INSERT INTO schema_migrations (version, name, checksum, breaking)
       VALUES (9999, '9999_next_release', '-', false), (0, '000_merged_late', '-', false)`,
    );
    try {
      const compatible = await runWorker(worker);
      expect(compatible.stderr).not.toMatch(/"level":(50|60)/);
      expect(compatible.code).toBe(0);

      await db.pool.query("UPDATE schema_migrations SET breaking = true WHERE version = 0");
      const refused = await runWorker(worker);
      expect(refused.code).toBe(1);
      expect(stderrLines(refused.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: the database at .+ has the pg-batch schema with migration 000_merged_late, which programs that do not know it cannot use \\(this one knows up to ${newest}\\): run this release's image$`,
          ),
        ),
      ]);
    } finally {
      await db.pool.query("DELETE FROM schema_migrations WHERE version IN (0, 9999)");
    }
  });
});
