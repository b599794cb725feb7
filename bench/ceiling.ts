import pg from "pg";
import users from "../jobs/users";
import { USERS_SQL_TWIN } from "./sql-twin/users";

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
  const maxAttempts = users.defaults.maxAttempts;
  const probe = new pg.Client({ connectionString: url });
  await probe.connect();
  const { rows: bounds } = await probe.query<{ first: string | null; last: string | null }>(
    "SELECT min(id) AS first, max(id) AS last FROM users",
  );
  await probe.end();
  const first = Number(bounds[0]?.first ?? 1);
  const last = Number(bounds[0]?.last ?? 0);
  let next = 0;
  let rows = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ connectionString: url, application_name: "bench-sql-twin" });
      await client.connect();
      try {
        for (;;) {
          const lo = first - 1 + next++ * rangeSize;
          if (lo >= last) break;
          const result = await client.query({
            name: "users-sql-twin",
            text: USERS_SQL_TWIN,
            values: [lo, lo + rangeSize, options.runId ?? 0, maxAttempts],
          });
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
