import { type TestDatabase, useTestDatabase } from "./database";
import { type Running, stopAll } from "./processes";

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
