import type pg from "pg";
import { getConfig, requireDatabaseUrl } from "./config";
import { getLogger } from "./context";
import { createPool } from "./db/pool";
import { checkDatabase, type DatabaseNeeds } from "./db/preflight";

/**
 * Runs a command with the process's pool on DATABASE_URL (required), closed afterwards. The
 * database is checked first (src/db/preflight.ts): one that does not answer, or lacks what
 * the command `needs`, ends the command with one line saying what to do.
 */
export async function withCommandPool<T>(
  command: string,
  connections: number,
  fn: (pool: pg.Pool) => Promise<T>,
  needs: DatabaseNeeds = "schema",
): Promise<T> {
  const config = getConfig();
  const url = requireDatabaseUrl(config);
  await checkDatabase(url, needs);
  const pool = createPool({ url, max: connections, appName: `${command} ${config.podName}`, logger: getLogger() });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}
