import fs from "node:fs";
import path from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { PoolClient } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { UsageError } from "../base/command-error";
import type { JobDefinition } from "../jobs/define";
import { jobSql } from "../jobs/job-sql";

/**
 * The keys of a run over a file of keys (seed enqueue --keys FILE), in batch_run_keys. The file
 * holds a key a line, or a CSV without a header whose first column is the key; blank lines are
 * skipped, a key listed twice counts once. Callers own transactions.
 */

const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

/** A key's text: an integer, optionally in double quotes, as a CSV's first column may hold it. */
const KEY = /^"?([+-]?\d+)"?$/;

/** A line of the file is no key: named by file and line, as a bad import is. */
export class KeysFileError extends UsageError {
  override name = "KeysFileError";
}

/** The file's keys, a line of COPY's text each, blank lines left out; refuses a line that holds no integer. */
class KeyLines extends Transform {
  private rest = "";
  private line = 0;

  constructor(private readonly file: string) {
    super({ decodeStrings: false, encoding: "utf8" });
  }

  override _transform(chunk: string, _encoding: BufferEncoding, done: TransformCallback): void {
    const lines = (this.rest + chunk).split("\n");
    this.rest = lines.pop() ?? "";
    this.keysOf(lines, done);
  }

  override _flush(done: TransformCallback): void {
    this.keysOf(this.rest === "" ? [] : [this.rest], done);
  }

  private keysOf(lines: string[], done: TransformCallback): void {
    let out = "";
    for (const text of lines) {
      this.line++;
      const field = (text.split(",", 1)[0] ?? "").trim();
      if (field === "" && text.trim() === "") continue;
      const digits = KEY.exec(field)?.[1];
      const key = digits === undefined ? undefined : BigInt(digits);
      if (key === undefined || key < INT8_MIN || key > INT8_MAX) {
        done(
          new KeysFileError(
            `${this.file}:${this.line}: ${JSON.stringify(field)} is not an integer key ` +
              "(a key a line, or a CSV without a header whose first column is the key)",
          ),
        );
        return;
      }
      out += `${key}\n`;
    }
    done(null, out);
  }
}

/**
 * Loads the file's keys as run `runId`'s: COPY into a table of the transaction's own, then into
 * batch_run_keys, each key once. Returns how many keys the run has.
 */
export async function loadRunKeys(client: PoolClient, runId: number, file: string): Promise<number> {
  const input = fs.createReadStream(file, { encoding: "utf8" });
  await client.query("CREATE TEMPORARY TABLE run_keys_file (key int8 NOT NULL) ON COMMIT DROP");
  await pipeline(input, new KeyLines(path.basename(file)), client.query(copyFrom("COPY run_keys_file FROM STDIN")));
  // each key once, in key order: a new run has none yet, and sorted keys append to the index
  // rather than land all over it (about half the time for a million keys)
  const inserted = await client.query(
    "INSERT INTO batch_run_keys (run_id, key) SELECT $1, key FROM run_keys_file GROUP BY key ORDER BY key",
    [runId],
  );
  return inserted.rowCount ?? 0;
}

/** Keys of a run's file that name no row the job takes (not in its table, or not its `where`'s). */
export interface UnmatchedKeys {
  count: number;
  /** The lowest few. */
  examples: string[];
}

/** The run's keys that name no row its job takes. */
export async function findUnmatchedKeys(client: PoolClient, job: JobDefinition, runId: number): Promise<UnmatchedKeys> {
  const sql = jobSql(job);
  const { rows } = await client.query<{ count: string; examples: string[] }>(sql.keysNotTheJobs, [
    runId,
    ...sql.filterValues,
  ]);
  return { count: Number(rows[0]?.count ?? 0), examples: rows[0]?.examples ?? [] };
}

/** Throws a usage error unless `file` is a file this process can read. */
export function assertKeysFileReadable(file: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (!fs.statSync(file).isFile()) throw new Error("not a file");
  } catch (error) {
    throw new UsageError(`--keys ${file}: cannot read it (${(error as Error).message})`);
  }
}
