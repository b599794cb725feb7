import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { MIGRATIONS_DIR } from "../../src/base/paths";
import { migrate, readMigrations } from "../../src/db/migrate";
import { quietLogger, type TestDatabase, useTestDatabase } from "../support/database";
import { seed } from "../support/processes";

async function appliedVersions(db: TestDatabase): Promise<number[]> {
  const { rows } = await db.pool.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
  return rows.map((row) => row.version);
}

describe("migrations", () => {
  const db = useTestDatabase({ migrated: false, each: true });

  it("apply in order, record each, and do nothing the second time", async () => {
    const all = await readMigrations();
    expect(all.map((m) => m.version)).toEqual([...all.map((m) => m.version)].sort((a, b) => a - b));

    const first = await migrate(db.pool, quietLogger);
    expect(first.applied).toEqual(all.map((m) => m.name));
    expect(await appliedVersions(db)).toEqual(all.map((m) => m.version));

    const second = await migrate(db.pool, quietLogger);
    expect(second.applied).toEqual([]);
    expect(await appliedVersions(db)).toEqual(all.map((m) => m.version));
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.migrations");
    expect(rows[0].n).toBeGreaterThan(10);
  });

  it("are refused when two files share a number, as two branches merged may leave them", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "migrations-"));
    try {
      await fs.writeFile(path.join(dir, "001_first.sql"), "SELECT 1;");
      await fs.writeFile(path.join(dir, "001_second.sql"), "SELECT 2;");
      await expect(readMigrations(dir)).rejects.toThrow(/are numbered 1: renumber 001_second\.sql/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it("are safe when several processes run them at the same moment", async () => {
    const runs = await Promise.all(Array.from({ length: 4 }, () => seed(["schema"], { DATABASE_URL: db.url })));
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const applied = runs.map((r) => (JSON.parse(r.stdout) as { applied: string[] }).applied);
    // exactly one process applied each migration
    expect(applied.flat().sort()).toEqual((await readMigrations()).map((m) => m.name).sort());
    expect(await appliedVersions(db)).toHaveLength((await readMigrations()).length);
  });

  it("refuse to continue when an applied migration was edited", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "migrations-"));
    await fs.cp(MIGRATIONS_DIR, dir, { recursive: true });
    await migrate(db.pool, quietLogger, dir);
    const file = path.join(dir, "001_users.sql");
    await fs.appendFile(file, "\n-- edited\n");
    await expect(migrate(db.pool, quietLogger, dir)).rejects.toThrow(
      "migration 001_users was changed after it was applied",
    );
    await fs.rm(dir, { recursive: true });
  });

  it("enforce the batch_status values", async () => {
    await migrate(db.pool, quietLogger);
    // 'processing' too: no run would ever take such a row
    for (const status of ["done", "processing"]) {
      await expect(
        db.pool.query("INSERT INTO users (name, email, batch_status) VALUES ('a', 'a@example.com', $1)", [status]),
      ).rejects.toThrow(/users_batch_status_check/);
    }
    for (const status of ["pending", "completed", "failed", "cancelled"]) {
      await db.pool.query("INSERT INTO users (name, email, batch_status) VALUES ('a', $1, $2)", [
        `${status}@example.com`,
        status,
      ]);
    }
  });

  it("adopt a database of the original proof of concept, keeping its rows", async () => {
    await db.pool.query(`
      CREATE TABLE users (
        id BIGSERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(255) UNIQUE NOT NULL,
        age INTEGER CHECK (age >= 0 AND age <= 150), salary INTEGER, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        batch_status VARCHAR(20) DEFAULT 'pending', batch_id INTEGER, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
      CREATE INDEX idx_users_batch_status ON users(batch_status);
      CREATE TABLE batch_jobs (
        id SERIAL PRIMARY KEY, batch_name VARCHAR(255) NOT NULL, status VARCHAR(20) DEFAULT 'pending',
        total_records INTEGER DEFAULT 0, processed_records INTEGER DEFAULT 0, failed_records INTEGER DEFAULT 0,
        started_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, completed_at TIMESTAMP, error_message TEXT);
      INSERT INTO users (name, email, batch_status) VALUES ('Ann', 'ann@example.com', 'failed'),
                                                        ('Bob', 'bob@example.com', 'processing');
      INSERT INTO batch_jobs (batch_name, status) VALUES ('worker-1-1700000000', 'completed');`);
    await migrate(db.pool, quietLogger);
    // a row the original left 'processing' is kept as it is
    const { rows } = await db.pool.query("SELECT name, batch_status, attempts FROM users ORDER BY id");
    expect(rows).toEqual([
      { name: "Ann", batch_status: "failed", attempts: 0 },
      { name: "Bob", batch_status: "processing", attempts: 0 },
    ]);
    const jobs = await db.pool.query("SELECT batch_name, kind FROM batch_jobs");
    expect(jobs.rows).toEqual([{ batch_name: "worker-1-1700000000", kind: "process" }]);
    const indexes = await db.pool.query("SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY 1");
    expect(indexes.rows.map((r) => r.indexname)).toEqual(["users_email_key", "users_pkey"]);
    const { rows: options } = await db.pool.query("SELECT reloptions FROM pg_class WHERE relname = 'users'");
    expect(options[0].reloptions).toEqual(["fillfactor=40"]);
  });
});
