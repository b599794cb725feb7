import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { createTestDatabase, type TestDatabase } from "../support/database";
import { dropLogin, type Login, loginAs } from "../support/logins";
import { ROOT, run } from "../support/processes";

/** This project's compiled code, hard-linked as in test/checkout-anywhere, to change as a release would. */
async function checkout(parent: string, name: string): Promise<string> {
  const dir = path.join(parent, name);
  await fs.mkdir(dir);
  const parts = ["package.json", "sql", "dist", "node_modules"].map((part) => path.join(ROOT, part));
  await promisify(execFile)("cp", ["-al", ...parts, dir]);
  return dir;
}

/** The first release: without the orders-reprice job and its state migration (the orders table is there). */
async function firstRelease(parent: string): Promise<string> {
  const dir = await checkout(parent, "release-1");
  await fs.rm(path.join(dir, "sql", "migrations", "013_job_orders_reprice.sql"));
  const jobs = path.join(dir, "dist", "jobs");
  for (const file of await fs.readdir(jobs)) if (file.startsWith("orders-reprice")) await fs.rm(path.join(jobs, file));
  return dir;
}

/** The next release's own migration: it alters tables the first release created. */
const NEXT_MIGRATION = "900_next_release";

/** The second release: the job and its state migration, and a migration of its own. */
async function secondRelease(parent: string): Promise<string> {
  const dir = await checkout(parent, "release-2");
  await fs.writeFile(
    path.join(dir, "sql", "migrations", `${NEXT_MIGRATION}.sql`),
    "ALTER TABLE imported_files ADD COLUMN note TEXT;\nALTER TABLE batch_chunks ADD COLUMN note TEXT;\n",
  );
  return dir;
}

/** The seed tool of a release's checkout. */
const seedOf = (dir: string, args: string[], env: Record<string, string>) =>
  run(process.execPath, [path.join(dir, "dist/seed/cli.js"), ...args], env, dir);

/**
 * graphile-worker's schema as the release before its migration 18 left it: 18 dropped this
 * trigger and its function (as 11 created them, on the table 15 renamed) and replaced add_job
 * and add_jobs; 19 only marks a breaking change. Done as the schema's owner, as a migration would.
 */
const UNDO_WORKER_MIGRATIONS_18_19 = `
  SET ROLE batch_admin;
  CREATE FUNCTION graphile_worker.tg_jobs__after_insert() RETURNS trigger AS $$
  BEGIN
    PERFORM pg_notify('jobs:insert', '');
    RETURN new;
  END;
  $$ LANGUAGE plpgsql;
  CREATE TRIGGER _900_after_insert AFTER INSERT ON graphile_worker._private_jobs
    FOR EACH STATEMENT EXECUTE PROCEDURE graphile_worker.tg_jobs__after_insert();
  DELETE FROM graphile_worker.migrations WHERE id >= 18;
  RESET ROLE;`;

describe("two releases in a row, as docs/kubernetes.md deploys them", () => {
  let parent: string;
  let db: TestDatabase;
  let admin: Login | undefined;
  beforeAll(async () => {
    parent = await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-releases-"));
    db = await createTestDatabase();
  });
  afterAll(async () => {
    if (admin) await dropLogin(db, admin);
    await db.drop();
    await fs.rm(parent, { recursive: true, force: true });
  });

  it("migrates the second release as a member of batch_admin: ours, a job's state and graphile-worker's", async () => {
    // release 1, once, as the user allowed to create roles (the test server's superuser)
    const first = await seedOf(await firstRelease(parent), ["schema", "--roles"], { DATABASE_URL: db.url });
    expect(first.stderr).not.toMatch(/"level":(50|60)/);
    expect(first.code).toBe(0);
    await db.pool.query(UNDO_WORKER_MIGRATIONS_18_19);
    admin = await loginAs(db, "batch_admin");

    // release 2: the migration Job's command, as the admin login
    const second = await seedOf(await secondRelease(parent), ["schema", "--roles"], { DATABASE_URL: admin.url });
    expect(second.stderr).not.toMatch(/must be owner|permission denied/);
    expect(second.code).toBe(0);
    const { applied } = JSON.parse(second.stdout) as { applied: string[] };
    expect(applied).toEqual(["013_job_orders_reprice", NEXT_MIGRATION]);

    const worker = await db.pool.query<{ latest: number; trigger: string | null }>(
      `SELECT (SELECT max(id) FROM graphile_worker.migrations) AS latest,
              to_regproc('graphile_worker.tg_jobs__after_insert')::text AS trigger`,
    );
    expect(worker.rows[0]).toEqual({ latest: 19, trigger: null });
    const state = await db.pool.query("SELECT count(*)::int AS n FROM orders WHERE reprice_status <> 'pending'");
    expect(state.rows[0].n).toBe(0);
    // everything pg-batch created is the schema owner's, so that the next release may alter it too
    const owners = await db.pool.query<{ owner: string }>(
      `SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'graphile_worker') AND c.relkind IN ('r', 'v', 'S', 'p')
       UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'graphile_worker'`,
    );
    expect(owners.rows.map((row) => row.owner)).toEqual(["batch_admin"]);
  });
});

describe("a database set up before batch_admin owned everything, handed over once", () => {
  let parent: string;
  let db: TestDatabase;
  let oldOwner: string;
  const oldOwnerPassword = randomBytes(18).toString("base64url");
  let admin: Login | undefined;
  beforeAll(async () => {
    parent = await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-owner-"));
    db = await createTestDatabase();
    // the login that set the database up then: it may create, and owns what it created
    oldOwner = `old_owner_${randomBytes(4).toString("hex")}`;
    // a password: the embedded server, unlike a developer's trust setup, authenticates every login
    await db.pool.query(`CREATE ROLE ${oldOwner} LOGIN PASSWORD '${oldOwnerPassword}'`);
    await db.pool.query(
      `DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO ${oldOwner}', current_database()); END $$;
       GRANT CREATE ON SCHEMA public TO ${oldOwner}`,
    );
  });
  afterAll(async () => {
    if (admin) await dropLogin(db, admin);
    await db.pool.query(`DROP OWNED BY ${oldOwner}; DROP ROLE ${oldOwner}`);
    await db.drop();
    await fs.rm(parent, { recursive: true, force: true });
  });

  const owners = async () =>
    (
      await db.pool.query<{ owner: string }>(
        `SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('public', 'graphile_worker') AND c.relkind IN ('r', 'v', 'S', 'p')
         UNION SELECT pg_get_userbyid(p.proowner) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'graphile_worker' OR p.proname LIKE 'batch\\_%'
         UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'graphile_worker'`,
      )
    ).rows.map((row) => row.owner);

  it("seed schema --roles by a superuser hands every object to batch_admin; the next release migrates as its member", async () => {
    const oldUrl = new URL(db.url);
    oldUrl.username = oldOwner;
    oldUrl.password = oldOwnerPassword;
    const release1 = await firstRelease(parent);
    const setUp = await seedOf(release1, ["schema"], { DATABASE_URL: oldUrl.toString() });
    expect(setUp.code).toBe(0);
    expect(await owners()).toEqual([oldOwner]);

    // a member of batch_admin may not hand over what it does not own: it names the owner
    await db.pool.query(
      "DO $$ BEGIN CREATE ROLE batch_admin NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    );
    admin = await loginAs(db, "batch_admin");
    const refused = await seedOf(release1, ["schema", "--roles"], { DATABASE_URL: admin.url });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`error: pg-batch's objects belong to ${oldOwner} (graphile_worker, `);
    expect(refused.stderr).toContain("run npm run seed -- schema --roles once as that owner or a superuser");

    // the one-time handover: the release's own migration step, as a superuser
    const handover = await seedOf(release1, ["schema", "--roles"], { DATABASE_URL: db.url });
    expect(handover.stderr).not.toMatch(/"level":(50|60)/);
    expect(handover.code).toBe(0);
    expect(JSON.parse(handover.stdout).handedToOwner).toBeGreaterThan(20);
    expect(await owners()).toEqual(["batch_admin"]);
    // again: nothing left to hand over
    const again = await seedOf(release1, ["schema", "--roles"], { DATABASE_URL: db.url });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).handedToOwner).toBe(0);

    const second = await seedOf(await secondRelease(parent), ["schema", "--roles"], { DATABASE_URL: admin.url });
    expect(second.stderr).not.toMatch(/must be owner|permission denied/);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).applied).toEqual(["013_job_orders_reprice", NEXT_MIGRATION]);
    expect(await owners()).toEqual(["batch_admin"]);
  });
});
