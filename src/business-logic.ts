/**
 * The business logic: what a batch run does to one user record. Replace `processUser` with
 * your own (call an API, recompute a field, migrate data); the chunk runner calls it for
 * every claimed row, ROW_CONCURRENCY records at a time, with a timeout of ROW_TIMEOUT_S.
 *
 * - Return a result to mark the row completed; its fields are written to the result columns
 *   (`outcomeColumns` and WRITE_OUTCOMES in src/chunks/slice.ts map them; add columns in a migration).
 * - Throw to mark the row failed with the error's message; it is tried again in a later retry
 *   round until MAX_ATTEMPTS.
 * - Side effects are at-least-once: a row whose slice was rolled back (crash, shutdown) runs
 *   again with the same `ctx.idempotencyKey`; pass it to external systems to de-duplicate.
 */

export interface UserRecord {
  id: number;
  name: string;
  email: string;
  age: number | null;
  salary: number | null;
  /** The TIMESTAMP column's text, e.g. "2025-08-26 19:57:15" (no time zone: not parsed into a Date). */
  createdAt: string | null;
}

export interface UserResult {
  emailNormalized: string;
  segment: string;
}

export interface RecordContext {
  runId: number;
  /** 1 on the first attempt at this row. */
  attempt: number;
  /** Stable across re-executions of the same attempt: run, row and attempt. */
  idempotencyKey: string;
  /** Aborted when the row times out or the worker is shutting down. */
  signal: AbortSignal;
}

export type ProcessUser = (user: UserRecord, ctx: RecordContext) => Promise<UserResult>;

const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function ageBand(age: number): string {
  if (age < 30) return "young";
  if (age < 50) return "middle";
  return "senior";
}

function salaryBand(salary: number): string {
  if (salary < 60_000) return "low";
  if (salary < 100_000) return "mid";
  return "high";
}

/** Validates the record, normalises its email and derives its customer segment. */
export const processUser: ProcessUser = async (user) => {
  const email = user.email.trim().toLowerCase();
  if (!EMAIL_SHAPE.test(email)) throw new Error(`invalid email address: ${user.email}`);
  if (user.name.trim() === "") throw new Error("name is empty");
  if (user.age === null || user.age < 0 || user.age > 150) throw new Error(`age out of range: ${user.age}`);
  if (user.salary === null || user.salary < 0) throw new Error(`salary missing or negative: ${user.salary}`);
  return { emailNormalized: email, segment: `${ageBand(user.age)}-${salaryBand(user.salary)}` };
};
