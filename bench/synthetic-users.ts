import type pg from "pg";

/** Adds `count` pending users with ids from `firstId` on, straight from SQL (no CSV, no faker). */
export async function insertSyntheticUsers(pool: pg.Pool, count: number, firstId = 1): Promise<void> {
  await pool.query(
    `INSERT INTO users (id, name, email, age, salary, created_at)
     SELECT g, 'User ' || g, 'user.' || g || '@example.com', 18 + g % 60, 30000 + g % 120000, now()
       FROM generate_series($1::bigint, $1::bigint + $2 - 1) g`,
    [firstId, count],
  );
  await pool.query("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))");
}
