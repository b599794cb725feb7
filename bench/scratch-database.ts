import { randomBytes } from "node:crypto";
import pg from "pg";
import { getConfig } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../src/db/embedded";
import { createPool } from "../src/db/pool";

/**
 * A database of its own for a long measurement: created on DATABASE_URL's server (or on an
 * embedded PostgreSQL when none is set), dropped afterwards.
 */
export async function withScratchDatabase<T>(
  prefix: string,
  fn: (db: { url: string; pool: pg.Pool }) => Promise<T>,
): Promise<T> {
  const config = getConfig();
  const logger = getLogger();
  let embedded: EmbeddedDatabase | undefined;
  if (!config.databaseUrl) embedded = await startEmbeddedPostgres(logger);
  const server = config.databaseUrl ?? (embedded as EmbeddedDatabase).url;
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), max: 4, appName: prefix, logger });
  try {
    return await fn({ url: url.toString(), pool });
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
    await embedded?.stop();
  }
}
