import pg from "pg";
import { fail } from "../cli-output";
import { describeDatabase, redactSecrets } from "../redact";

/** Long enough for a slow network, short enough that a wrong host does not hang a pod's start. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The tables worker processes use (batch_worker's grants in sql/roles.sql); the tasks need them all. */
const WORKER_TABLES = [
  "users",
  "batch_jobs",
  "batch_chunks",
  "batch_errors",
  "batch_steps",
  "batch_samples",
  "batch_events",
  "worker_sessions",
];

/** The tables the database lacks; to_regclass needs no privilege on them, so the worker's role may ask. */
async function missingTables(connectionString: string): Promise<string[]> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL",
      [WORKER_TABLES],
    );
    return rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

/** An error's message; a refused connection to a host with several addresses has only a code. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return redactSecrets(error.message || String((error as { code?: unknown }).code ?? error.name));
}

/**
 * Checks that the worker can start before graphile-worker opens its pool (and installs its own
 * schema): an unreachable database or a missing schema ends the process with one line on stderr
 * saying what to do, instead of a stack trace or a worker that fails every job.
 */
export async function assertWorkerCanStart(connectionString: string): Promise<void> {
  const where = describeDatabase(connectionString);
  const missing = await missingTables(connectionString).catch((error: unknown) =>
    fail(`cannot connect to the database at ${where}: ${describeError(error)}`),
  );
  if (missing.length > 0) {
    fail(`the database at ${where} lacks the pg-batch schema (no table ${missing[0]}): run npm run seed -- schema`);
  }
}
