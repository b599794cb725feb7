import type pg from "pg";
import { getConfig, requireDatabaseUrl, sessionDatabaseUrl } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { createPool } from "../src/db/pool";
import { checkDatabase, type DatabaseNeeds } from "../src/db/preflight";

/**
 * What a command's connections carry: statements only (DATABASE_URL, through any pooler), or
 * a session's state too (advisory locks, COPY, session settings: src/config/config.ts sessionDatabaseUrl).
 */
export type ConnectionUse = "statements" | "session";

/**
 * Runs a command with the process's pool, closed afterwards, on DATABASE_URL (required) or, for
 * a command that `use`s a session, the connection that keeps one. The database is checked first
 * (src/db/preflight.ts): one that does not answer, or lacks what the command `needs`, ends the
 * command with one line saying what to do.
 */
export async function withCommandPool<T>(
  command: string,
  connections: number,
  fn: (pool: pg.Pool) => Promise<T>,
  needs: DatabaseNeeds = "schema",
  use: ConnectionUse = "statements",
): Promise<T> {
  const config = getConfig();
  const url = use === "session" ? sessionDatabaseUrl(config, command) : requireDatabaseUrl(config);
  await checkDatabase(url, needs);
  const pool = createPool({ url, max: connections, appName: `${command} ${config.podName}`, logger: getLogger() });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}
