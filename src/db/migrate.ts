import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { runMigrations as runWorkerMigrations } from "graphile-worker";
import type pg from "pg";
import type { Logger } from "../base/logger";
import { MIGRATIONS_DIR } from "../base/paths";
import { toGraphileLogger } from "./graphile-logger";
import { inTransaction } from "./pool";
import { asRole, migrateWorkerSchemaAs, migrationRole } from "./schema-owner";

/** Any pod may run migrations; this session-level advisory lock lets one at a time do so. */
const MIGRATION_LOCK_KEY = 4_171_202_601;

/** A line of a migration that code from before it cannot run against (as graphile-worker's migrations mark theirs). */
const BREAKING_MARK = /^--! breaking-change$/m;

interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
  /** Code from before this migration cannot run against the schema after it (src/db/preflight.ts). */
  breaking: boolean;
}

/** The migrations in order; two files of one number are an error: schema_migrations knows a migration by its number. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((file) => /^\d+_.+\.sql$/.test(file)).sort();
  const twin = files.find(
    (file, i) => i > 0 && Number.parseInt(file, 10) === Number.parseInt(files[i - 1] as string, 10),
  );
  if (twin) throw new Error(`two migrations in ${dir} are numbered ${Number.parseInt(twin, 10)}: renumber ${twin}`);
  return Promise.all(
    files.map(async (file) => {
      const sql = await fs.readFile(path.join(dir, file), "utf8");
      return {
        version: Number.parseInt(file, 10),
        name: file.replace(/\.sql$/, ""),
        sql,
        checksum: createHash("sha256").update(sql).digest("hex"),
        breaking: BREAKING_MARK.test(sql),
      };
    }),
  );
}

/**
 * Brings the database to the newest schema: graphile-worker's own migrations first (ours
 * enqueue jobs through its functions), then every file of sql/migrations not yet recorded in
 * `schema_migrations`, each in its own transaction with its record; all of it as the schema's
 * owner where the database has one (src/db/schema-owner.ts). Safe to run again and from
 * several processes at once. An applied file whose text has changed is an error.
 */
export async function migrate(pool: pg.Pool, logger: Logger, dir = MIGRATIONS_DIR): Promise<{ applied: string[] }> {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    try {
      const role = await migrationRole(client);
      await runWorkerMigrations({
        pgPool: pool,
        logger: toGraphileLogger(logger),
        preset: migrateWorkerSchemaAs(role),
      });
      return await asRole(client, role, () => applyMigrations(client, logger, dir));
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

/** The files of `dir` that schema_migrations does not record, applied in order. */
async function applyMigrations(client: pg.PoolClient, logger: Logger, dir: string): Promise<{ applied: string[] }> {
  await client.query(`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      checksum TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      breaking BOOLEAN NOT NULL DEFAULT false
    )`);
  // added by this release: taken only where missing, as the lock would hold up starting workers
  await client.query(`
    DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass AND attname = 'breaking') THEN
        ALTER TABLE schema_migrations ADD COLUMN breaking BOOLEAN NOT NULL DEFAULT false;
      END IF;
    END $$`);
  const { rows } = await client.query<{ version: number; checksum: string }>(
    "SELECT version, checksum FROM schema_migrations",
  );
  const done = new Map(rows.map((row) => [row.version, row.checksum]));
  const applied: string[] = [];
  for (const migration of await readMigrations(dir)) {
    const checksum = done.get(migration.version);
    if (checksum !== undefined) {
      if (checksum !== migration.checksum) {
        throw new Error(`migration ${migration.name} was changed after it was applied`);
      }
      continue;
    }
    await inTransaction(client, async () => {
      await client.query(migration.sql);
      await client.query("INSERT INTO schema_migrations (version, name, checksum, breaking) VALUES ($1, $2, $3, $4)", [
        migration.version,
        migration.name,
        migration.checksum,
        migration.breaking,
      ]);
    });
    applied.push(migration.name);
    logger.debug({ migration: migration.name }, "applied migration");
  }
  logger.info(
    { applied: applied.length },
    applied.length > 0 ? `schema: ${applied.length} migration(s) applied` : "schema: up to date",
  );
  return { applied };
}
