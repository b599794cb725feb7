import { randomBytes } from "node:crypto";
import pg from "pg";
import { insertSyntheticUsers } from "../../bench/synthetic-users";
import { createLogger } from "../../src/base/logger";
import { migrate } from "../../src/db/migrate";
import { createPool } from "../../src/db/pool";

export const quietLogger = createLogger({ level: "silent", pod: "test" });

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

function adminUrl(): string {
  const url = process.env.TEST_ADMIN_DATABASE_URL;
  if (!url)
    throw new Error(
      "TEST_ADMIN_DATABASE_URL is not set: run the tests through jest (npm test); a test that needs PostgreSQL belongs in test/db/ or test/system/",
    );
  return url;
}

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/** A new database, empty or a copy of `template`, with a pool on it. */
async function newDatabase(template?: string): Promise<TestDatabase> {
  const name = `test_${randomBytes(6).toString("hex")}`;
  await adminQuery(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ""}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), max: 10, appName: "tests", logger: quietLogger });
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** A new, empty database of its own for one test file. */
export const createTestDatabase = (): Promise<TestDatabase> => newDatabase();

/**
 * The database the global setup migrates once, which every migrated test database copies: a
 * copy takes a fraction of the migrations' time. Closed to connections, as a copy's source must be.
 */
export async function createSchemaTemplate(): Promise<string> {
  const db = await newDatabase();
  await migrate(db.pool, quietLogger);
  await db.pool.end();
  const name = new URL(db.url).pathname.slice(1);
  await adminQuery(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
  return name;
}

export const dropSchemaTemplate = (name: string): Promise<void> => adminQuery(`DROP DATABASE IF EXISTS ${name}`);

/** A test database with the schema applied (a copy of the global setup's migrated one). */
export async function createMigratedDatabase(): Promise<TestDatabase> {
  const template = process.env.TEST_SCHEMA_TEMPLATE;
  if (!template) throw new Error("TEST_SCHEMA_TEMPLATE is not set: run the tests through jest (npm test)");
  return newDatabase(template);
}

/**
 * A database of its own for the tests of the enclosing describe (or file): made before them and
 * dropped after them, or for each test with `each`; migrated unless `migrated: false`, with
 * `users` pending users. Read its url and pool inside hooks and tests.
 */
export function useTestDatabase(options: { migrated?: boolean; users?: number; each?: boolean } = {}): TestDatabase {
  let current: TestDatabase | undefined;
  (options.each ? beforeEach : beforeAll)(async () => {
    current = await (options.migrated === false ? createTestDatabase() : createMigratedDatabase());
    if (options.users) await insertUsers(current.pool, options.users);
  });
  (options.each ? afterEach : afterAll)(async () => {
    await current?.drop();
    current = undefined;
  });
  const made = () => {
    if (!current) throw new Error("the test database exists only inside hooks and tests");
    return current;
  };
  return {
    get url() {
      return made().url;
    },
    get pool() {
      return made().pool;
    },
    drop: () => made().drop(),
  };
}

/** Adds `count` pending users with ids from `firstId` on, straight from SQL. */
export const insertUsers = insertSyntheticUsers;

export async function statusCounts(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ batch_status: string; count: number }>(
    "SELECT batch_status, count(*)::int AS count FROM users GROUP BY 1",
  );
  return Object.fromEntries(rows.map((row) => [row.batch_status, row.count]));
}
