import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { CommandError } from "../src/base/command-error";
import type { Logger } from "../src/base/logger";
import { PROJECT_ROOT } from "../src/base/paths";

/** The embedded database of `--embedded`: seeded before the autoscaler starts, read after it ends. */

const execFileAsync = promisify(execFile);
const SEED_CLI = path.join(PROJECT_ROOT, "dist", "seed", "cli.js");

/**
 * `seed all`: the schema, `rows` generated users imported, and a batch run enqueued. It runs with
 * the pods' settings (`env`), as the run records the settings it starts with (CHUNK_SIZE...).
 */
export async function seedDatabase(options: {
  url: string;
  rows: number;
  batchName: string;
  env: Record<string, string>;
  logger: Logger;
}): Promise<void> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-autoscale-data-"));
  try {
    const { stdout } = await execFileAsync(
      process.execPath,
      [SEED_CLI, "all", "--rows", String(options.rows), "--out", dataDir, "--batch-name", options.batchName],
      {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...options.env, DATABASE_URL: options.url, LOG_LEVEL: "warn" },
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const { enqueued } = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}");
    options.logger.info(enqueued, `embedded database seeded: batch run "${options.batchName}", ${options.rows} rows`);
  } catch (error) {
    // the seed command's own line says what failed (a connection, the pods' settings)
    const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
    throw new CommandError(
      `seeding the embedded database failed: ${stderr.split("\n").at(-1) || (error as Error).message}`,
    );
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

export interface RunState {
  name: string;
  status: string;
  total: number;
  completed: number;
  failed: number;
}

/** The batch runs as they ended, for the summary: the embedded database goes away with the autoscaler. */
export async function readRuns(url: string): Promise<RunState[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<RunState>(
      `SELECT batch_name AS name, status, total_records::int AS total, processed_records::int AS completed,
              failed_records::int AS failed
         FROM batch_jobs WHERE kind = 'process' ORDER BY id`,
    );
    return rows;
  } finally {
    await client.end();
  }
}
