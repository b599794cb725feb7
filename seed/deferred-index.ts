import type pg from "pg";
import { inTransaction } from "../src/db/pool";
import type { Logger } from "../src/logger";
import { forEachUser } from "./user-files";

/**
 * Loading an empty users table, `seed import` drops the unique index on email and builds it
 * after the last file: COPY then appends rows (the primary key too: ids ascend in a file)
 * instead of inserting every email at a random place of a btree that outgrows memory. A
 * duplicate email, which COPY would have refused, is found when the index is built: the later
 * file holding it is refused whole, as COPY would have refused it, and the index built again.
 */

/** Held by an import for its whole length: one import at a time may drop or build the index. */
export const IMPORT_LOCK_KEY = 4_171_202_603;

/** Enough to sort tens of millions of emails in few passes; for the build's session alone. */
const BUILD_MEMORY = "1GB";

const FIND_EMAIL_INDEX = `
  SELECT ic.relname AS index_name, pg_get_indexdef(i.indexrelid) AS definition, con.conname AS constraint_name
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype = 'u'
   WHERE i.indrelid = 'users'::regclass AND i.indisunique AND NOT i.indisprimary AND i.indisvalid
     AND i.indnatts = 1 AND a.attname = 'email' AND i.indpred IS NULL AND i.indexprs IS NULL
     -- only the table's owner may drop it; nor may it go while a foreign key refers to it
     AND pg_has_role(t.relowner, 'USAGE')
     AND NOT EXISTS (SELECT 1 FROM pg_constraint fk WHERE fk.contype = 'f' AND fk.conindid = i.indexrelid)`;

interface DeferredIndex {
  index_name: string;
  definition: string;
  constraint_name: string | null;
}

const usersIsEmpty = async (client: pg.PoolClient) =>
  (await client.query("SELECT 1 FROM users LIMIT 1")).rowCount === 0;

/**
 * Drops the email index when users has no rows, recording it in import_deferred_indexes in the
 * same transaction. Returns whether this import must build deferred indexes at its end: also
 * when an interrupted import left one unbuilt. Call with IMPORT_LOCK_KEY held.
 */
export async function deferEmailIndex(client: pg.PoolClient, logger: Logger): Promise<boolean> {
  const { rowCount: left } = await client.query("SELECT 1 FROM import_deferred_indexes");
  if (left) {
    logger.info("import: an earlier import was interrupted before it built the email index: building it at the end");
    return true;
  }
  if (!(await usersIsEmpty(client))) return false;
  return inTransaction(client, async () => {
    const index = (await client.query<DeferredIndex>(FIND_EMAIL_INDEX)).rows[0];
    if (!index) return false;
    // no row may come in between the check and the drop
    await client.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    if (!(await usersIsEmpty(client))) return false;
    await client.query(
      "INSERT INTO import_deferred_indexes (index_name, definition, constraint_name) VALUES ($1, $2, $3)",
      [index.index_name, index.definition, index.constraint_name],
    );
    await client.query(
      index.constraint_name
        ? `ALTER TABLE users DROP CONSTRAINT ${client.escapeIdentifier(index.constraint_name)}`
        : `DROP INDEX ${client.escapeIdentifier(index.index_name)}`,
    );
    logger.info({ index: index.index_name }, "import: users is empty: its email index is built after the load");
    return true;
  });
}

/** Builds each deferred index in one transaction with the removal of its record; a duplicate throws 23505. */
async function buildDeferredIndexes(client: pg.PoolClient): Promise<void> {
  const { rows } = await client.query<DeferredIndex>(
    "SELECT index_name, definition, constraint_name FROM import_deferred_indexes ORDER BY index_name",
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
        await client.query(
          `ALTER TABLE users ADD CONSTRAINT ${constraint} UNIQUE USING INDEX ${client.escapeIdentifier(index.index_name)}`,
        );
      }
      await client.query("DELETE FROM import_deferred_indexes WHERE index_name = $1", [index.index_name]);
    };
    await inTransaction(client, build, [`SET LOCAL maintenance_work_mem = '${BUILD_MEMORY}'`]);
  }
}

/** A file whose rows are in users, in the order files are imported (by name). */
export interface LoadedFile {
  index: number;
  file: string;
  path: string;
}

/** A loaded file refused for a duplicate email: its rows and its imported_files row are gone. */
export interface Refusal {
  index: number;
  error: string;
}

/** Deletes a refused file's rows (by the ids its lines hold) and its imported_files row, so that it can be imported once fixed. */
async function unloadFile(client: pg.PoolClient, file: LoadedFile): Promise<void> {
  const ids: string[] = [];
  await forEachUser(file.path, (_line, id) => ids.push(id));
  await inTransaction(client, async () => {
    for (let from = 0; from < ids.length; from += 10_000) {
      await client.query("DELETE FROM users WHERE id = ANY($1::bigint[])", [ids.slice(from, from + 10_000)]);
    }
    await client.query("DELETE FROM imported_files WHERE file_name = $1", [file.file]);
  });
}

/**
 * Finds the files COPY would have refused for a duplicate email, had the index been there: in
 * file order, the first file with a line whose email an earlier kept file, an earlier line of
 * its own, or a row of no file of this import already holds; then refuses each, named by that
 * line, and unloads it.
 */
async function refuseDuplicates(client: pg.PoolClient, files: LoadedFile[]): Promise<Refusal[]> {
  const { rows: duplicated } = await inTransaction(
    client,
    () =>
      client.query<{ email: string; ids: string[] }>(
        "SELECT email, array_agg(id)::text[] AS ids FROM users GROUP BY email HAVING count(*) > 1",
      ),
    // the sort of every email, as the index build's
    [`SET LOCAL work_mem = '${BUILD_MEMORY}'`],
  );
  const idsOf = new Map(duplicated.map((row) => [row.email, new Set(row.ids)]));
  const found = new Map<string, number>();
  const lines: { line: number; email: string }[][] = [];
  for (const file of files) {
    const own: { line: number; email: string }[] = [];
    await forEachUser(file.path, (line, id, email) => {
      if (!idsOf.get(email)?.has(id)) return;
      own.push({ line, email });
      found.set(email, (found.get(email) ?? 0) + 1);
    });
    lines.push(own);
  }
  const taken = new Set(duplicated.filter((row) => (found.get(row.email) ?? 0) < row.ids.length).map((r) => r.email));
  const refused: Refusal[] = [];
  for (const [n, file] of files.entries()) {
    const own = new Set<string>();
    const first = (lines[n] ?? []).find(({ email }) => {
      if (taken.has(email) || own.has(email)) return true;
      own.add(email);
      return false;
    });
    if (!first) {
      for (const email of own) taken.add(email);
      continue;
    }
    await unloadFile(client, file);
    refused.push({
      index: file.index,
      error: `${file.file}:${first.line}: duplicate value, (email)=(${first.email}) already exists.`,
    });
  }
  return refused;
}

/**
 * Builds the indexes the import deferred (maintenance_work_mem raised for the build). Where a
 * duplicate email stops the build, refuses the files that hold it (see refuseDuplicates) and
 * builds again. Returns the refused files; throws when the build fails otherwise, the deferral
 * left recorded for the next import.
 */
export async function buildDeferred(client: pg.PoolClient, files: LoadedFile[], logger: Logger): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  let kept = files;
  for (;;) {
    const started = performance.now();
    try {
      await buildDeferredIndexes(client);
      logger.info({ seconds: (performance.now() - started) / 1000 }, "import: email index built");
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
