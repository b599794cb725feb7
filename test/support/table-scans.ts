import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";

/** Scans of a table so far (sequential and index), as the statistics system counts them. */
export async function tableScans(pool: pg.Pool, table: string): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_stat_clear_snapshot()");
    const { rows } = await client.query(
      "SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::int AS n FROM pg_stat_user_tables WHERE relname = $1",
      [table],
    );
    return rows[0].n as number;
  } finally {
    client.release();
  }
}

/** The count once the statistics of earlier sessions have all arrived: unchanged over 1.2 s. */
export async function settledTableScans(pool: pg.Pool, table: string): Promise<number> {
  for (;;) {
    const before = await tableScans(pool, table);
    await sleep(1200);
    if ((await tableScans(pool, table)) === before) return before;
  }
}
