import type pg from "pg";
import { CommandError } from "../src/base/command-error";
import type { Logger } from "../src/base/logger";
import { inTransaction } from "../src/db/pool";
import { forEachUser } from "./user-files";

/**
 * Loading an empty users table, `seed import` drops its unique indexes (the primary key on id
 * and the unique index on email) and builds them after the last file: COPY then only appends
 * rows, instead of inserting each key into a btree (the email's at a random place of a tree that
 * outgrows memory). A duplicate, which COPY would have refused, is found when an index is built:
 * the later file holding it is refused whole, as COPY would have refused it, and the index built
 * again.
 */

/** Held by an import for its whole length: one import at a time may drop or build the indexes. */
export const IMPORT_LOCK_KEY = 4_171_202_603;

/** Enough to sort tens of millions of emails in few passes; for the build's session alone. */
const BUILD_MEMORY = "1GB";

/** The columns a deferred index may hold: each line of a file carries both. */
type KeyColumn = "id" | "email";

const FIND_UNIQUE_INDEXES = `
  SELECT ic.relname AS index_name, pg_get_indexdef(i.indexrelid) AS definition, con.conname AS constraint_name,
         CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE' END AS constraint_kind,
         a.attname AS key_column
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
   WHERE i.indrelid = 'users'::regclass AND i.indisunique AND i.indisvalid
     AND i.indnatts = 1 AND a.attname IN ('id', 'email') AND i.indpred IS NULL AND i.indexprs IS NULL
     -- only the table's owner may drop them; nor may one go while a foreign key refers to it
     AND pg_has_role(t.relowner, 'USAGE')
     AND NOT EXISTS (SELECT 1 FROM pg_constraint fk WHERE fk.contype = 'f' AND fk.conindid = i.indexrelid)`;

interface DeferredIndex {
  index_name: string;
  definition: string;
  constraint_name: string | null;
  constraint_kind: "PRIMARY KEY" | "UNIQUE" | null;
  key_column: KeyColumn;
}

const usersIsEmpty = async (client: pg.PoolClient) =>
  (await client.query("SELECT 1 FROM users LIMIT 1")).rowCount === 0;

/**
 * Refuses, before a file loads, a role that could not build the indexes an interrupted import
 * left: CREATE INDEX and ADD CONSTRAINT need the privileges of users' owner.
 */
async function assertMayBuildDeferred(client: pg.PoolClient): Promise<void> {
  // USAGE: the owner's privileges, which its members have too (as CREATE INDEX checks them)
  const { rows } = await client.query<{ owner: string; may: boolean }>(
    `SELECT pg_get_userbyid(relowner) AS owner, pg_has_role(relowner, 'USAGE') AS may
       FROM pg_class WHERE oid = 'users'::regclass`,
  );
  const users = rows[0];
  if (users && !users.may) {
    throw new CommandError(
      "an interrupted import left users' unique indexes to build, which only the table's owner can do: " +
        `run \`npm run seed -- import\` again as ${users.owner}, or as a member of that role`,
    );
  }
}

/**
 * Drops users' unique indexes when it has no rows, recording them in import_deferred_indexes in
 * the same transaction. Returns whether this import must build deferred indexes at its end:
 * also when an interrupted import left some unbuilt, which a role that may not build them is
 * refused. Call with IMPORT_LOCK_KEY held.
 */
export async function deferUniqueIndexes(client: pg.PoolClient, logger: Logger): Promise<boolean> {
  const { rowCount: left } = await client.query("SELECT 1 FROM import_deferred_indexes");
  if (left) {
    await assertMayBuildDeferred(client);
    logger.info(
      "import: an earlier import was interrupted before it built users' unique indexes: building them at the end",
    );
    return true;
  }
  if (!(await usersIsEmpty(client))) return false;
  return inTransaction(client, async () => {
    const indexes = (await client.query<DeferredIndex>(FIND_UNIQUE_INDEXES)).rows;
    if (indexes.length === 0) return false;
    // no row may come in between the check and the drop
    await client.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    if (!(await usersIsEmpty(client))) return false;
    for (const index of indexes) {
      await client.query(
        `INSERT INTO import_deferred_indexes (index_name, definition, constraint_name, constraint_kind, key_column)
         VALUES ($1, $2, $3, $4, $5)`,
        [index.index_name, index.definition, index.constraint_name, index.constraint_kind, index.key_column],
      );
      await client.query(
        index.constraint_name
          ? `ALTER TABLE users DROP CONSTRAINT ${client.escapeIdentifier(index.constraint_name)}`
          : `DROP INDEX ${client.escapeIdentifier(index.index_name)}`,
      );
    }
    logger.info(
      { indexes: indexes.map((index) => index.index_name) },
      "import: users is empty: its unique indexes are built after the load",
    );
    return true;
  });
}

/** Builds each deferred index in one transaction with the removal of its record; a duplicate throws 23505. */
async function buildDeferredIndexes(client: pg.PoolClient): Promise<void> {
  // the primary key first, as the table was made
  const { rows } = await client.query<DeferredIndex>(
    "SELECT * FROM import_deferred_indexes ORDER BY key_column = 'id' DESC, index_name",
  );
  for (const index of rows) {
    const build = async () => {
      // IF NOT EXISTS: an index built by hand meanwhile is kept
      await client.query(index.definition.replace(/^CREATE (UNIQUE )?INDEX /, "CREATE $1INDEX IF NOT EXISTS "));
      const { rowCount: attached } = await client.query(
        "SELECT 1 FROM pg_constraint WHERE conrelid = 'users'::regclass AND conname = $1",
        [index.constraint_name],
      );
      if (index.constraint_name && !attached) {
        const constraint = client.escapeIdentifier(index.constraint_name);
        // constraint_kind is one of two words (the table's check)
        await client.query(
          `ALTER TABLE users ADD CONSTRAINT ${constraint} ${index.constraint_kind} USING INDEX ${client.escapeIdentifier(index.index_name)}`,
        );
      }
      await client.query("DELETE FROM import_deferred_indexes WHERE index_name = $1", [index.index_name]);
    };
    await inTransaction(client, build, [`SET LOCAL maintenance_work_mem = '${BUILD_MEMORY}'`]);
  }
}

/** A file this import loaded, in the order files are imported (by name): only such a file may be refused. */
export interface LoadedFile {
  index: number;
  file: string;
  path: string;
}

/** A loaded file refused for a duplicate id or email: its rows and its imported_files row are gone. */
export interface Refusal {
  index: number;
  error: string;
}

/** The values of `column` that more than one row of users holds, each with the transactions (xmin) that wrote them. */
async function duplicatedValues(client: pg.PoolClient, column: KeyColumn): Promise<Map<string, string[]>> {
  const { rows } = await inTransaction(
    client,
    () =>
      client.query<{ value: string; xacts: string[] }>(
        `SELECT ${client.escapeIdentifier(column)}::text AS value, array_agg(xmin::text) AS xacts
           FROM users GROUP BY 1 HAVING count(*) > 1`,
      ),
    // the sort of every value, as the index build's
    [`SET LOCAL work_mem = '${BUILD_MEMORY}'`],
  );
  return new Map(rows.map((row) => [row.value, row.xacts]));
}

/**
 * Finds the files COPY would have refused for a duplicate id or email, had the indexes been
 * there: in file order, the first file with a line whose value an earlier kept file, an earlier
 * line of its own, or a row of no file of this import already holds; then refuses each, named by
 * that line, and removes its rows (by the transaction that loaded it: two rows with one id are
 * told apart by nothing else) with its imported_files row, so that it can be imported once fixed.
 * A row of no file of this import, committed by an earlier import that was interrupted before
 * its build, or written since by another transaction (a run over a half-imported table), keeps
 * its value, as it would have with the indexes in place: a clash between two such rows is left
 * to the caller's error.
 */
async function refuseDuplicates(client: pg.PoolClient, files: LoadedFile[]): Promise<Refusal[]> {
  const { rows: deferred } = await client.query<{ key_column: KeyColumn }>(
    "SELECT DISTINCT key_column FROM import_deferred_indexes",
  );
  // id first: with both indexes in place, COPY names a row's duplicate id before its email
  const columns = (["id", "email"] as const).filter((column) => deferred.some((d) => d.key_column === column));
  const duplicated = new Map<KeyColumn, Map<string, string[]>>();
  for (const column of columns) duplicated.set(column, await duplicatedValues(client, column));

  const { rows: loads } = await client.query<{ file_name: string; xact: string }>(
    "SELECT file_name, load_xact::xid::text AS xact FROM imported_files WHERE file_name = ANY($1) AND load_xact IS NOT NULL",
    [files.map((file) => file.file)],
  );
  const xactOf = new Map(loads.map((load) => [load.file_name, load.xact]));
  const ours = new Set(xactOf.values());
  // values a row of no file of this import holds
  const taken = new Map<KeyColumn, Set<string>>();
  for (const [column, values] of duplicated) {
    taken.set(column, new Set([...values].filter(([, xacts]) => xacts.some((x) => !ours.has(x))).map(([v]) => v)));
  }

  const refused: (Refusal & { file: string; xact: string })[] = [];
  for (const file of files) {
    const xact = xactOf.get(file.file);
    if (xact === undefined) continue;
    const own = new Map(columns.map((column) => [column, new Set<string>()]));
    let first: { line: number; column: KeyColumn; value: string } | undefined;
    await forEachUser(file.path, (line, id, email) => {
      if (first) return;
      for (const column of columns) {
        const value = column === "id" ? id : email;
        if (!duplicated.get(column)?.get(value)?.includes(xact)) continue;
        if (taken.get(column)?.has(value) || own.get(column)?.has(value)) {
          first = { line, column, value };
          return;
        }
        own.get(column)?.add(value);
      }
    });
    if (first) {
      const error = `${file.file}:${first.line}: duplicate value, (${first.column})=(${first.value}) already exists.`;
      refused.push({ index: file.index, error, file: file.file, xact });
    } else {
      for (const [column, values] of own) for (const value of values) taken.get(column)?.add(value);
    }
  }
  if (refused.length > 0) {
    await inTransaction(client, async () => {
      await client.query("DELETE FROM users WHERE xmin = ANY($1::xid[])", [refused.map((r) => r.xact)]);
      await client.query("DELETE FROM imported_files WHERE file_name = ANY($1)", [refused.map((r) => r.file)]);
    });
  }
  return refused.map(({ index, error }) => ({ index, error }));
}

/**
 * Builds the indexes the import deferred (maintenance_work_mem raised for the build). Where a
 * duplicate id or email stops a build, refuses the files of `files` that hold it (see
 * refuseDuplicates) and builds again. Returns the refused files; throws when the build fails
 * otherwise, the deferral left recorded for the next import.
 */
export async function buildDeferred(client: pg.PoolClient, files: LoadedFile[], logger: Logger): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  let kept = files;
  for (;;) {
    const started = performance.now();
    try {
      await buildDeferredIndexes(client);
      logger.info({ seconds: (performance.now() - started) / 1000 }, "import: unique indexes built");
      return refused;
    } catch (error) {
      if ((error as pg.DatabaseError).code !== "23505") throw error;
      const more = await refuseDuplicates(client, kept);
      if (more.length === 0) {
        const { message, detail } = error as pg.DatabaseError;
        throw new Error(`${message} (${detail}): in rows that no file of this import holds`);
      }
      refused.push(...more);
      kept = kept.filter((file) => !more.some((refusal) => refusal.index === file.index));
    }
  }
}
