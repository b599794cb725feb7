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

interface SchemaVersion {
  version: number | null;
  name: string | null;
  breaking_version: number | null;
  breaking_name: string | null;
}

/**
 * Throws a CommandError saying what to do where the program cannot run against the database's
 * schema: the schema lacks the code's newest migration (SchemaBehindError), or a migration
 * applied after it is marked breaking (an older program against a newer release's schema). A
 * newer schema without such a migration is one older programs may still use. Read through
 * batch_schema_version() (sql/migrations/021_schema_version.sql), which the worker's role may
 * call though it may not read schema_migrations.
 */
export async function assertSchemaVersion(client: pg.ClientBase, where: string): Promise<void> {
  const migrations = await readMigrations();
  const newest = migrations[migrations.length - 1];
  if (newest === undefined) return;
  const { rows: found } = await client.query<{ present: boolean; allowed: boolean | null }>(
    `SELECT to_regprocedure('batch_schema_version()') IS NOT NULL AS present,
            CASE WHEN to_regprocedure('batch_schema_version()') IS NOT NULL
                 THEN has_function_privilege('batch_schema_version()', 'EXECUTE') END AS allowed`,
  );
  if (!found[0]?.present) {
    throw new SchemaBehindError(
      `the database at ${where} has the pg-batch schema of a release without batch_schema_version(); this program needs ${newest.name}: run this release's migration (npm run seed -- schema)`,
    );
  }
  if (!found[0].allowed) {
    throw new CommandError(
      `the database at ${where} does not let this role read the pg-batch schema's version (batch_schema_version()): make the login a member of a batch_ role (npm run seed -- roles)`,
    );
  }
  const { rows } = await client.query<SchemaVersion>("SELECT * FROM batch_schema_version()");
  const schema = rows[0];
  if (schema?.version == null || schema.version < newest.version) {
    throw new SchemaBehindError(
      `the database at ${where} has the pg-batch schema at migration ${schema?.name ?? "none"}; this program needs ${newest.name}: run this release's migration (npm run seed -- schema)`,
    );
  }
  if (schema.breaking_version !== null && schema.breaking_version > newest.version) {
    throw new CommandError(
      `the database at ${where} has the pg-batch schema at migration ${schema.name}, which programs from before its migration ${schema.breaking_name} cannot use (this one knows up to ${newest.name}): run this release's image`,
    );
  }
}
