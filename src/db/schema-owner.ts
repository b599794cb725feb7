import type pg from "pg";
import { CommandError } from "../base/command-error";

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

/** What sql/migrations create in public, by name: tables, views, sequences, functions and types. */
export function createdNames(migrationSql: string[]): string[] {
  const created =
    /\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|FUNCTION|PROCEDURE|TYPE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\.)?"?([a-z_][a-z0-9_]*)/gi;
  const names = migrationSql.flatMap((sql) =>
    [...sql.replace(/--.*$/gm, "").matchAll(created)].map((match) => (match[1] as string).toLowerCase()),
  );
  return [...new Set(["schema_migrations", ...names])].sort();
}

/**
 * The statements that hand pg-batch's objects to batch_admin where another role owns them: those
 * the migrations created in public (`names`), graphile-worker's schema and all in it. Sequences
 * a table owns follow their table; so do indexes and a table's row type.
 */
const TRANSFERS = `
  WITH owner AS (SELECT oid FROM pg_roles WHERE rolname = $2),
  ours AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('public', 'graphile_worker'))
  SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $2) AS statement, pg_get_userbyid(n.nspowner) AS holder
    FROM pg_namespace n WHERE n.nspname = 'graphile_worker' AND n.nspowner <> (SELECT oid FROM owner)
  UNION ALL
  SELECT format('ALTER %s %s OWNER TO %I',
                CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                               ELSE 'TABLE' END, c.oid::regclass, $2),
         pg_get_userbyid(c.relowner)
    FROM pg_class c JOIN ours o ON o.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner <> (SELECT oid FROM owner)
     AND (o.nspname = 'graphile_worker' OR c.relname = ANY($1))
     AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.deptype IN ('a', 'i'))
  UNION ALL
  SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $2), pg_get_userbyid(p.proowner)
    FROM pg_proc p JOIN ours o ON o.oid = p.pronamespace
   WHERE p.proowner <> (SELECT oid FROM owner) AND (o.nspname = 'graphile_worker' OR p.proname = ANY($1))
  UNION ALL
  SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, $2), pg_get_userbyid(t.typowner)
    FROM pg_type t JOIN ours o ON o.oid = t.typnamespace
   WHERE t.typtype IN ('e', 'c', 'd') AND t.typowner <> (SELECT oid FROM owner)
     AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
     AND (o.nspname = 'graphile_worker' OR t.typname = ANY($1))`;

/**
 * Hands batch_admin what an earlier setup left to another owner (a database set up before
 * batch_admin owned everything): once, by that owner or a superuser; afterwards nothing is left
 * to hand over, and any member of batch_admin migrates. Where this user may not hand an object
 * over, says whose it is and who must run this.
 */
export async function transferToSchemaOwner(client: pg.ClientBase, names: string[]): Promise<{ transferred: number }> {
  const { rows } = await client.query<{ statement: string; holder: string }>(TRANSFERS, [names, SCHEMA_OWNER]);
  const refused = new Map<string, string[]>();
  for (const { statement, holder } of rows) {
    try {
      await client.query(statement);
    } catch (error) {
      // 42501: insufficient_privilege, neither the object's owner nor a superuser
      if ((error as { code?: string }).code !== "42501") throw error;
      refused.set(holder, [...(refused.get(holder) ?? []), statement.replace(/^ALTER \S+ (.+) OWNER TO .+$/, "$1")]);
    }
  }
  if (refused.size > 0) {
    const owners = [...refused].map(
      ([holder, objects]) => `${holder} (${objects.slice(0, 3).join(", ")}${objects.length > 3 ? ", ..." : ""})`,
    );
    throw new CommandError(
      `pg-batch's objects belong to ${owners.join(", ")}, not ${SCHEMA_OWNER}: run npm run seed -- schema --roles once as that owner or a superuser`,
    );
  }
  return { transferred: rows.length };
}
