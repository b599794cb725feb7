import type pg from "pg";
import { type TestDatabase, useTestDatabase } from "./database";
import { type Running, stopAll, terminate } from "./processes";
import { lockedJobs } from "./runs";

/**
 * A database of its own for each test of the enclosing describe (`users` pending users), and
 * the worker processes a test starts (push them to `workers`): after each test they are
 * stopped with `signal`, before the database is dropped under them.
 */
export function useWorkersAndDatabase(
  signal: NodeJS.Signals,
  options: { users?: number } = {},
): { db: TestDatabase; workers: Running[] } {
  const workers: Running[] = [];
  // jest runs a describe's afterEach hooks in the order they were declared: this one first
  afterEach(() => stopAll(workers, signal));
  const db = useTestDatabase({ ...options, each: true });
  return { db, workers };
}

/**
 * SIGTERMs the test's one worker (taking it out of `workers`) while its chunks wait, and checks
 * that it shut down gracefully and handed them back: nothing locked, a hand-back recorded.
 */
export async function expectWorkerHandsBackOnSigterm(workers: Running[], pool: pg.Pool, waitMs: number) {
  const first = workers.splice(0)[0] as Running;
  const exited = await terminate(first, waitMs);
  // graphile-worker ends a graceful shutdown by re-raising the signal it received
  expect(exited?.signal ?? exited?.code).toBe("SIGTERM");
  expect(exited?.stderr).toContain("Global graceful shutdown complete");
  expect(await lockedJobs(pool)).toBe(0);
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM batch_events WHERE event = 'chunk-handed-back'");
  expect(rows[0].n).toBeGreaterThan(0);
}
