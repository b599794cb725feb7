import { randomBytes } from "node:crypto";
import pg from "pg";
import { getConfig } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../src/db/embedded";
import { createPool } from "../src/db/pool";

export interface ScratchDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
}

/** What creates and drops the databases: a client or a pool of any database of the server. */
type Admin = Pick<pg.Pool, "query">;

async function createDatabase(admin: Admin, server: string, prefix: string, poolSize: number) {
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), max: poolSize, appName: prefix, logger: getLogger() });
  return { name, url: url.toString(), pool };
}

async function dropDatabase(admin: Admin, db: ScratchDatabase): Promise<void> {
  await db.pool.end();
  await admin.query(`DROP DATABASE ${db.name} WITH (FORCE)`);
}

/**
 * A database of its own for a long measurement: created on DATABASE_URL's server (or on an
 * embedded PostgreSQL when none is set), dropped afterwards.
 */
export async function withScratchDatabase<T>(prefix: string, fn: (db: ScratchDatabase) => Promise<T>): Promise<T> {
  const config = getConfig();
  let embedded: EmbeddedDatabase | undefined;
  if (!config.databaseUrl) embedded = await startEmbeddedPostgres(getLogger());
  const server = config.databaseUrl ?? (embedded as EmbeddedDatabase).url;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  const db = await createDatabase(admin, server, prefix, 4);
  try {
    return await fn(db);
  } finally {
    await dropDatabase(admin, db);
    await admin.end();
    await embedded?.stop();
  }
}

/**
 * Databases of their own on the server of `beside` (a scratch database), one per prefix, for
 * cases measured side by side; each with a pool of `poolSize`. Dropped afterwards, with whatever
 * is still connected to them.
 */
export async function withDatabasesBeside<T>(
  beside: Pick<ScratchDatabase, "url" | "pool">,
  prefixes: string[],
  poolSize: number,
  fn: (dbs: ScratchDatabase[]) => Promise<T>,
): Promise<T> {
  const dbs: ScratchDatabase[] = [];
  try {
    for (const prefix of prefixes) dbs.push(await createDatabase(beside.pool, beside.url, prefix, poolSize));
    return await fn(dbs);
  } finally {
    for (const db of dbs) await dropDatabase(beside.pool, db);
  }
}
