import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export interface RunRow {
  id: number;
  status: string;
  round: number;
  total_records: number;
  processed_records: number;
  failed_records: number;
  retryable_records: number;
}

export async function runByName(pool: pg.Pool, name: string): Promise<RunRow> {
  const { rows } = await pool.query<RunRow>(
    `SELECT id, status, round, total_records, processed_records, failed_records, retryable_records
       FROM batch_jobs WHERE batch_name = $1`,
    [name],
  );
  if (!rows[0]) throw new Error(`no run named ${name}`);
  return rows[0];
}

export interface Tally {
  run: RunRow;
  completed: number;
  failed: number;
  retryable: number;
  pending: number;
}

/**
 * The run's counters and the users rows they summarise, read in one snapshot: they must agree
 * at every moment, mid-run included.
 */
export async function tally(pool: pg.Pool, name: string, maxAttempts: number): Promise<Tally> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    const run = await runByName(client as unknown as pg.Pool, name);
    const { rows } = await client.query(
      `SELECT count(*) FILTER (WHERE batch_status = 'completed' AND batch_id = $1)::int AS completed,
              count(*) FILTER (WHERE batch_status = 'failed' AND batch_id = $1
                                 AND (attempts >= $2 OR $3))::int AS failed,
              count(*) FILTER (WHERE batch_status = 'failed' AND batch_id = $1
                                 AND attempts < $2 AND NOT $3)::int AS retryable,
              count(*) FILTER (WHERE batch_status = 'pending')::int AS pending
         FROM users`,
      [run.id, maxAttempts, ["completed", "failed"].includes(run.status)],
    );
    await client.query("COMMIT");
    return { run, ...rows[0] };
  } finally {
    client.release();
  }
}

export async function lockedJobs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE locked_at IS NOT NULL");
  return rows[0].n;
}
