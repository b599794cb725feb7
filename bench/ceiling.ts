import pg from "pg";
import users from "../jobs/users";
import { USERS_SQL_TWIN } from "./sql-twin/users";

/** The twin's statement over the ids in (lo, hi], writing `runId` as the rows' batch_id. */
export function twinStatement(lo: number, hi: number, runId = 0): pg.QueryConfig {
  return { name: "users-sql-twin", text: USERS_SQL_TWIN, values: [lo, hi, runId, users.defaults.maxAttempts] };
}

/** A connection of the twin's: its statements are told apart from the application's by its name. */
export const twinClient = (url: string) => new pg.Client({ connectionString: url, application_name: "bench-sql-twin" });

/** The users table's first and last id (an empty table: 1 and 0). */
export async function usersIdRange(client: pg.Client): Promise<{ first: number; last: number }> {
  const { rows } = await client.query<{ first: string | null; last: string | null }>(
    "SELECT min(id) AS first, max(id) AS last FROM users",
  );
  return { first: Number(rows[0]?.first ?? 1), last: Number(rows[0]?.last ?? 0) };
}

/**
 * The pure-SQL ceiling on our own schema: the default job's SQL twin (bench/sql-twin/users.ts)
 * run over the users table by `clients` connections, each repeatedly taking the next `rangeSize`
 * ids (a counter shared by the connections, as `limit`'s sequence is) and doing the whole range
 * in one UPDATE, until the ranges pass the table's last id. Timed from the connections' opening
 * to the last statement's end.
 */
export async function runSqlTwin(
  url: string,
  options: { clients?: number; rangeSize?: number; runId?: number } = {},
): Promise<{ rows: number; seconds: number; rowsPerSecond: number }> {
  const clients = options.clients ?? 4;
  const rangeSize = options.rangeSize ?? 10_000;
  const probe = twinClient(url);
  await probe.connect();
  const { first, last } = await usersIdRange(probe);
  await probe.end();
  let next = 0;
  let rows = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = twinClient(url);
      await client.connect();
      try {
        for (;;) {
          const lo = first - 1 + next++ * rangeSize;
          if (lo >= last) break;
          const result = await client.query(twinStatement(lo, lo + rangeSize, options.runId));
          rows += result.rowCount ?? 0;
        }
      } finally {
        await client.end();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { rows, seconds, rowsPerSecond: rows / seconds };
}
