import pg from "pg";
import type { Logger } from "../base/logger";

export type { PoolClient } from "pg";

/** Runs `fn` with a client from a pool; graphile-worker's `helpers.withPgClient` has this shape. */
export type WithClient = <T>(fn: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

/** The process's one pool. A connection's failure is logged once, not fatal. */
export function createPool(options: { url: string; max: number; appName: string; logger: Logger }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    application_name: options.appName.slice(0, 63),
    keepAlive: true,
  });
  // Every connection logs its own failure, idle or checked out (a checked-out one also fails its
  // query); without these listeners the error event would crash the process. The pool re-emits
  // an idle connection's error, already logged.
  pool.on("connect", (client) =>
    client.on("error", (error) => options.logger.warn({ err: error }, "database connection failed")),
  );
  pool.on("error", () => undefined);
  return pool;
}

export function withPool(pool: pg.Pool): WithClient {
  return async (fn) => {
    const client = await pool.connect();
    try {
      return await fn(client);
    } finally {
      client.release();
    }
  };
}

/** BEGIN, `fn`, COMMIT; ROLLBACK when `fn` throws. `setup` statements run right after BEGIN. */
export async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>, setup: string[] = []): Promise<T> {
  await client.query(["BEGIN", ...setup].join("; "));
  try {
    const result = await fn();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
