import type pg from "pg";
import { CommandError } from "../base/command-error";
import { EXIT_TEMPFAIL } from "../base/exit-status";
import { readMigrations } from "./migrate";

/**
 * The database's schema is older than the program's code: its release's migration has not run
 * yet. A temporary failure (EX_TEMPFAIL): a pod started again once the migration is done runs.
 */
export class SchemaBehindError extends CommandError {
  override name = "SchemaBehindError";
  override readonly exitStatus = EXIT_TEMPFAIL;
}

interface AppliedMigration {
  version: number;
  name: string;
  breaking: boolean;
}

const GATE = "batch_applied_migrations()";

/** Names a list in a line: the first few, and how many more. */
function listed(names: string[]): string {
  const shown = names.slice(0, 3).join(", ");
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/**
 * Throws a CommandError saying what to do where the program cannot run against the database's
 * schema: a migration of its code is not applied (SchemaBehindError), or a migration it does not
 * know (a newer release's) is applied and marked breaking. Migrations it does not know and that
 * are not so marked only add what it does not use. Compares sets, not the newest numbers: a
 * migration skipped or applied out of order counts too. Read through batch_applied_migrations()
 * (sql/migrations/025_applied_migrations.sql), which the worker's role may call though it may
 * not read schema_migrations.
 */
export async function assertSchemaVersion(client: pg.ClientBase, where: string): Promise<void> {
  const migrations = await readMigrations();
  const newest = migrations[migrations.length - 1];
  if (newest === undefined) return;
  const { rows: found } = await client.query<{ present: boolean; allowed: boolean | null }>(
    `SELECT to_regprocedure($1) IS NOT NULL AS present,
            CASE WHEN to_regprocedure($1) IS NOT NULL THEN has_function_privilege($1, 'EXECUTE') END AS allowed`,
    [GATE],
  );
  if (!found[0]?.present) {
    throw new SchemaBehindError(
      `the database at ${where} has the pg-batch schema of a release without ${GATE}; this program needs ${newest.name}: run this release's migration (npm run seed -- schema)`,
    );
  }
  if (!found[0].allowed) {
    throw new CommandError(
      `the database at ${where} does not let this role read the pg-batch schema's migrations (${GATE}): make the login a member of a batch_ role (npm run seed -- roles)`,
    );
  }
  const { rows: applied } = await client.query<AppliedMigration>(`SELECT * FROM ${GATE}`);
  const appliedVersions = new Set(applied.map((migration) => migration.version));
  const missing = migrations.filter((migration) => !appliedVersions.has(migration.version));
  if (missing.length > 0) {
    throw new SchemaBehindError(
      `the database at ${where} has the pg-batch schema without migration ${listed(missing.map((m) => m.name))}, which this program needs: run this release's migration (npm run seed -- schema)`,
    );
  }
  const known = new Set(migrations.map((migration) => migration.version));
  const breaking = applied.filter((migration) => migration.breaking && !known.has(migration.version));
  if (breaking.length > 0) {
    throw new CommandError(
      `the database at ${where} has the pg-batch schema with migration ${listed(breaking.map((m) => m.name))}, which programs that do not know it cannot use (this one knows up to ${newest.name}): run this release's image`,
    );
  }
}
