import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { CommandError, UsageError } from "../src/base/command-error";
import type { Logger } from "../src/base/logger";
import { buildDeferred, deferUniqueIndexes, IMPORT_LOCK_KEY } from "./deferred-index";
import { CSV_COLUMNS } from "./user-rows";

export type FileResult =
  | { file: string; status: "imported"; rows: number }
  | { file: string; status: "skipped"; rows: number }
  | { file: string; status: "failed"; error: string };

export type FailedFile = Extract<FileResult, { status: "failed" }>;

export const isFailed = (result: FileResult): result is FailedFile => result.status === "failed";

export interface ImportSummary {
  /** The batch_jobs row recording this import. */
  runId: number;
  files: FileResult[];
  rowsImported: number;
}

export interface ImportOptions {
  pool: pg.Pool;
  dir: string;
  /** Files loaded at the same time, each on its own connection; the import holds one more. */
  concurrency: number;
  logger: Logger;
  startedBy: string;
  /** Called with the bytes read so far and the bytes of all files. */
  onProgress?: (bytes: number, totalBytes: number) => void;
}

export class ImportError extends CommandError {
  override name = "ImportError";
}

/** What a check constraint of users asks of a value, where "value out of range" would not say. */
const CHECKS: Record<string, string> = {
  // 'processing' is refused too: no run takes such a row (sql/migrations/010_status_truths.sql)
  users_batch_status_check: "batch_status must be pending, completed, failed or cancelled",
};

/** "users-00002.csv:3: invalid input syntax for type integer: "x" (column age)" from a COPY error. */
function describeCopyError(file: string, error: unknown): string {
  const e = error as Partial<pg.DatabaseError> & Error;
  const line = /line (\d+)/.exec(e.where ?? "")?.[1];
  const column = /column (\w+)/.exec(e.where ?? "")?.[1];
  let text = e.message;
  if (e.code === "23505" && e.detail) text = `duplicate value, ${e.detail.replace(/^Key /, "")}`;
  else if (e.code === "23514" && e.constraint)
    text = `${CHECKS[e.constraint] ?? "value out of range"} (check ${e.constraint})`;
  const columnNote = column && !text.includes(column) ? ` (column ${column})` : "";
  return `${line ? `${file}:${line}` : file}: ${text}${columnNote}`;
}

async function copyStatement(client: pg.PoolClient): Promise<string> {
  const { rows } = await client.query<{ version: number }>(
    "SELECT current_setting('server_version_num')::int AS version",
  );
  // HEADER MATCH (PostgreSQL 15+) also checks the header names against the columns.
  const header = (rows[0]?.version ?? 0) >= 150000 ? "MATCH" : "true";
  return `COPY users (${CSV_COLUMNS.join(", ")}) FROM STDIN WITH (FORMAT csv, HEADER ${header})`;
}

/**
 * Loads one file in one transaction: its imported_files record first (so a concurrent or later
 * import skips it), then COPY. Any error rolls back the whole file.
 */
async function importFile(
  pool: pg.Pool,
  filePath: string,
  runId: number,
  onBytes: (bytes: number) => void,
): Promise<FileResult> {
  const file = path.basename(filePath);
  let client: pg.PoolClient | undefined;
  try {
    const { size } = await fs.promises.stat(filePath);
    if (size === 0) return { file, status: "failed", error: `${file}: the file is empty` };
    client = await pool.connect();
    await client.query("BEGIN");
    const claimed = await client.query(
      `INSERT INTO imported_files (file_name, bytes, rows, import_run_id, load_xact)
       VALUES ($1, $2, 0, $3, pg_current_xact_id())
       ON CONFLICT (file_name) DO NOTHING`,
      [file, size, runId],
    );
    if (claimed.rowCount === 0) {
      const { rows } = await client.query<{ bytes: string; rows: string }>(
        "SELECT bytes, rows FROM imported_files WHERE file_name = $1",
        [file],
      );
      await client.query("ROLLBACK");
      const before = rows[0];
      if (before && Number(before.bytes) !== size) {
        return {
          file,
          status: "failed",
          error: `${file}: a file of this name was imported before with ${before.bytes} bytes; this one has ${size}`,
        };
      }
      onBytes(size);
      return { file, status: "skipped", rows: Number(before?.rows ?? 0) };
    }
    const copy = client.query(copyFrom(await copyStatement(client)));
    const input = fs.createReadStream(filePath, { highWaterMark: 1 << 20 });
    input.on("data", (chunk) => onBytes(chunk.length));
    await pipeline(input, copy);
    const rows = copy.rowCount;
    await client.query("UPDATE imported_files SET rows = $2 WHERE file_name = $1", [file, rows]);
    await client.query("COMMIT");
    return { file, status: "imported", rows };
  } catch (error) {
    await client?.query("ROLLBACK").catch(() => undefined);
    return { file, status: "failed", error: describeCopyError(file, error) };
  } finally {
    client?.release();
  }
}

/**
 * Imports every .csv file of `dir` into users with COPY, `concurrency` files at a time, and
 * records the import in batch_jobs (kind 'import'), counting rows. Files imported before are
 * skipped; a file with a bad line fails alone, with its name and line number. Imports run one
 * at a time; into an empty table, the unique indexes are built after the load (seed/deferred-index.ts).
 */
export async function importDirectory(options: ImportOptions): Promise<ImportSummary> {
  const { pool, dir, logger } = options;
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir)).filter((name) => name.endsWith(".csv")).sort();
  } catch (error) {
    throw new UsageError(`cannot read the directory ${dir}: ${(error as Error).message}`);
  }
  if (names.length === 0) throw new ImportError(`no .csv files in ${dir}`);
  const paths = names.map((name) => path.join(dir, name));
  const sizes = await Promise.all(paths.map(async (file) => (await fs.promises.stat(file)).size));
  const totalBytes = sizes.reduce((sum, size) => sum + size, 0);

  // the import's own statements, and its lock, held until it ends
  const session = await pool.connect();
  let broken: Error | undefined;
  try {
    const { rows: free } = await session.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
      IMPORT_LOCK_KEY,
    ]);
    if (!free[0]?.locked) {
      logger.info("import: waiting for another import to end");
      await session.query("SELECT pg_advisory_lock($1)", [IMPORT_LOCK_KEY]);
    }
    return await importFiles(options, session, paths, totalBytes);
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    // a session that failed is closed, and its lock with it
    if (!broken) await session.query("SELECT pg_advisory_unlock($1)", [IMPORT_LOCK_KEY]).catch(() => undefined);
    session.release(broken);
  }
}

/** The import proper, on `session`, which holds the import lock. */
async function importFiles(
  options: ImportOptions,
  session: pg.PoolClient,
  paths: string[],
  totalBytes: number,
): Promise<ImportSummary> {
  const { pool, dir, logger } = options;
  const { rows: created } = await session.query<{ id: number }>(
    `INSERT INTO batch_jobs (batch_name, kind, status, created_by) VALUES ($1, 'import', 'running', $2) RETURNING id`,
    [`import ${path.resolve(dir)} ${new Date().toISOString()}`, options.startedBy],
  );
  const runId = (created[0] as { id: number }).id;

  let bytesRead = 0;
  const onBytes = (bytes: number) => {
    bytesRead += bytes;
    options.onProgress?.(bytesRead, totalBytes);
  };
  const results: FileResult[] = new Array(paths.length);
  const rowsImported = () => results.reduce((sum, r) => sum + (r.status === "imported" ? r.rows : 0), 0);
  let loaded = false;
  let failure: string | undefined;
  try {
    const deferred = await deferUniqueIndexes(session, logger);
    let next = 0;
    const lane = async () => {
      while (next < paths.length) {
        const index = next++;
        const result = await importFile(pool, paths[index] as string, runId, onBytes);
        results[index] = result;
        // a failed file is reported once, with the others, in the import's one line of failure
        logger.debug(result, result.status === "failed" ? result.error : `file ${result.status}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, paths.length) }, lane));
    loaded = true;

    if (deferred) {
      // the files this import loaded: rows an interrupted import committed stay, as the key in place would keep them
      const files = results.flatMap((result, index) =>
        result.status === "imported" ? [{ index, file: result.file, path: paths[index] as string }] : [],
      );
      for (const { index, error } of await buildDeferred(session, files, logger)) {
        results[index] = { file: (results[index] as FileResult).file, status: "failed", error };
      }
    }
    // a deferred build also follows rows an interrupted import loaded
    if (rowsImported() > 0 || deferred) {
      // ids came from the files: move the id sequence past them, and refresh planner statistics
      await session.query(`
        SELECT setval(pg_get_serial_sequence('users', 'id'), m)
          FROM (SELECT max(id) AS m FROM users) s
         WHERE m > coalesce(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)`);
      await session.query("ANALYZE users");
    }
  } catch (error) {
    failure = `${loaded ? "after" : "before"} loading: ${(error as Error).message}`;
    throw error;
  } finally {
    const errors = results.filter(isFailed).map((result) => result.error);
    if (failure) errors.push(failure);
    // the import's record ends even when the import does not: never left 'running'
    await pool
      .query(
        `UPDATE batch_jobs
            SET status = $2, total_records = $3, processed_records = $3, completed_at = now(), updated_at = now(),
                error_message = $4
          WHERE id = $1`,
        [
          runId,
          errors.length > 0 ? "failed" : "completed",
          rowsImported(),
          errors.length > 0 ? errors.join("\n") : null,
        ],
      )
      .catch((error: unknown) => logger.warn({ err: error, run: runId }, "could not record the end of the import"));
  }
  return { runId, files: results, rowsImported: rowsImported() };
}
