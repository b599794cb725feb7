import type pg from "pg";

/**
 * The role that owns pg-batch's schema (sql/schema-owner.sql). Migrations run as it, so that a
 * later release, run by any member of it, may alter what an earlier one created.
 */
export const SCHEMA_OWNER = "batch_admin";

/**
 * The role to run the migrations as: the schema's owner where it is set up in this database
 * (it may create in it) and the login may act as it; otherwise none, and a database without
 * the roles (a developer's, the tests') is migrated as the login itself.
 */
export async function migrationRole(client: pg.ClientBase): Promise<string | undefined> {
  const { rows } = await client.query<{ owner: boolean }>(
    `SELECT CASE WHEN to_regrole($1) IS NULL THEN false
                 ELSE has_database_privilege($1, current_database(), 'CREATE')
                      AND pg_has_role(session_user, $1, 'MEMBER') END AS owner`,
    [SCHEMA_OWNER],
  );
  return rows[0]?.owner ? SCHEMA_OWNER : undefined;
}

/** Runs `fn` on `client` as `role` (none: as the login), then back as the login. */
export async function asRole<T>(client: pg.ClientBase, role: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (role === undefined) return fn();
  await client.query(`SET ROLE ${role}`);
  try {
    return await fn();
  } finally {
    await client.query("RESET ROLE");
  }
}

/** graphile-worker's preset that installs and upgrades its schema as `role`. */
export function migrateWorkerSchemaAs(role: string | undefined): GraphileConfig.Preset {
  if (role === undefined) return {};
  const plugin: GraphileConfig.Plugin = {
    name: "BatchSchemaOwner",
    version: "1.0.0",
    description: "runs graphile-worker's own migrations as the role that owns pg-batch's schema",
    worker: {
      middleware: {
        bootstrap: (next, event) => asRole(event.client, role, () => Promise.resolve(next())),
        migrate: (next, event) => asRole(event.client, role, () => Promise.resolve(next())),
      },
    },
  };
  return { plugins: [plugin] };
}
