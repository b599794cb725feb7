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

/** A new, empty database of its own for one test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), max: 10, appName: "tests", logger: quietLogger });
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: adminUrl() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A test database with the schema applied. */
export async function createMigratedDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  await migrate(db.pool, quietLogger);
  return db;
}

/** Adds `count` pending users with ids from `firstId` on, straight from SQL. */
export const insertUsers = insertSyntheticUsers;

export async function statusCounts(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ batch_status: string; count: number }>(
    "SELECT batch_status, count(*)::int AS count FROM users GROUP BY 1",
  );
  return Object.fromEntries(rows.map((row) => [row.batch_status, row.count]));
}
