import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import users from "../../jobs/users";

/**
 * The per-record work both peers do, as a queue's user would write it for the default job: the
 * row travels in the job's payload, the record waits `delayMs` (the same simulated I/O as
 * PROCESS_DELAY_MS), runs jobs/users.ts's function and writes its outcome columns in one UPDATE
 * of that row (a failing row is marked failed with the function's message, as the worker does).
 */

export interface UserPayload {
  id: number;
  name: string;
  email: string;
  age: number | null;
  salary: number | null;
  createdAt: string | null;
}

/** One job payload per row, built in SQL (`u` is the users table). */
export const PAYLOAD_SQL = `json_build_object('id', u.id, 'name', u.name, 'email', u.email, 'age', u.age,
  'salary', u.salary, 'createdAt', u.created_at::text)`;

const WRITE_OUTCOME = `
  UPDATE users
     SET batch_status = $2, attempts = attempts + 1, last_error = $3,
         email_normalized = coalesce($4, email_normalized), segment = coalesce($5, segment),
         batch_id = $6, processed_at = now(), updated_at = now()
   WHERE id = $1`;

const NEVER = new AbortController().signal;

export async function workOnUser(
  query: (text: string, values: unknown[]) => Promise<unknown>,
  user: UserPayload,
  delayMs: number,
  runId = 0,
): Promise<void> {
  if (delayMs > 0) await sleep(delayMs);
  let outcome: unknown[];
  try {
    const result = await users.process(
      { ...user },
      {
        runId,
        params: {},
        attempt: 1,
        idempotencyKey: `${runId}:${user.id}:1`,
        signal: NEVER,
        aborted: false,
      },
    );
    outcome = ["completed", null, result?.emailNormalized, result?.segment];
  } catch (error) {
    outcome = ["failed", (error as Error).message, null, null];
  }
  await query(WRITE_OUTCOME, [user.id, ...outcome, runId]);
}

/** Rows given an outcome (completed or failed) since the table was filled. */
export async function rowsDone(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM users WHERE attempts > 0");
  return rows[0].n;
}

/** Runs `fn` over `items`, `concurrency` at a time. */
export async function mapConcurrent<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
