import pg from "pg";
import { CommandError } from "../base/command-error";
import { describeDatabase, redactSecrets } from "../base/redact";
import { inTransaction } from "./pool";
import { assertSchemaVersion } from "./schema-version";
import { describeTlsFailure } from "./tls";

/** Long enough for a slow network, short enough that a wrong host does not hang a pod's start. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The tables worker processes use besides their jobs' (batch_worker's grants in sql/roles.sql). */
const WORKER_TABLES = [
  "batch_jobs",
  "batch_chunks",
  "batch_errors",
  "batch_steps",
  "batch_samples",
  "batch_events",
  "worker_sessions",
];

/** What a program needs of the database: that it answers, or that it also holds the schema. */
export type DatabaseNeeds = "connection" | "schema";

/**
 * A program's own check once the schema's is done, given the settings its transaction starts with:
 * a worker's, that the tables of every job it runs fit their definitions (src/jobs/catalog-check.ts).
 */
export type FurtherCheck = (client: pg.Client, setup: string[]) => Promise<void>;

/** The tables the database lacks; to_regclass needs no privilege on them, so the worker's role may ask. */
async function missingTables(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL",
    [WORKER_TABLES],
  );
  return rows.map((row) => row.name);
}

/**
 * An error's message; a TLS failure's with the setting to change; a refused connection to a host
 * with several addresses has only a code.
 */
function describeError(error: unknown, connectionString: string): string {
  if (!(error instanceof Error)) return String(error);
  const message =
    describeTlsFailure(error, connectionString) ??
    (error.message || String((error as { code?: unknown }).code ?? error.name));
  return redactSecrets(message);
}

/**
 * A program killed while a check waits (on a lock its table is under) leaves no backend waiting.
 * LOCAL: through a transaction pooler, a session setting would outlive the check on a server
 * connection other clients share.
 */
const CHECK_FOR_LOST_CLIENT = "SET LOCAL client_connection_check_interval = 1000";

/**
 * Throws a CommandError saying how to create the schema where the database lacks it, and what to
 * run where its version does not fit the program's (src/db/schema-version.ts).
 */
async function assertSchemaPresent(client: pg.Client, where: string): Promise<void> {
  const missing = await missingTables(client);
  if (missing.length > 0) {
    throw new CommandError(
      `the database at ${where} lacks the pg-batch schema (no table ${missing[0]}): run npm run seed -- schema`,
    );
  }
  await assertSchemaVersion(client, where);
}

/**
 * Checks, before a program opens its pool, that the database answers and, where `needs` says
 * so, holds the pg-batch schema at a version the program's code can use. Throws a CommandError whose message
 * says what failed and what to do, instead of a stack trace later, or a worker that fails
 * every job.
 */
export async function checkDatabase(
  connectionString: string,
  needs: DatabaseNeeds,
  further?: FurtherCheck,
): Promise<void> {
  const where = describeDatabase(connectionString);
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
  } catch (error) {
    throw new CommandError(`cannot connect to the database at ${where}: ${describeError(error, connectionString)}`);
  }
  try {
    if (needs === "connection") {
      // through a pooler, the login alone may not have reached the database
      await client.query("SELECT 1");
      return;
    }
    await inTransaction(client, () => assertSchemaPresent(client, where), [CHECK_FOR_LOST_CLIENT]);
    await further?.(client, [CHECK_FOR_LOST_CLIENT]);
  } finally {
    await client.end();
  }
}
