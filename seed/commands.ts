import fs from "node:fs/promises";
import type pg from "pg";
import { CommandError } from "../src/base/command-error";
import { ROLES_FILE, SCHEMA_OWNER_FILE } from "../src/base/paths";
import type { Config } from "../src/config/config";
import { getCatalog, getLogger } from "../src/config/context";
import { migrate, readMigrations } from "../src/db/migrate";
import { withPool } from "../src/db/pool";
import { createdNames, transferToSchemaOwner } from "../src/db/schema-owner";
import type { JobDefinition } from "../src/jobs/define";
import { grantWorkerAccess } from "../src/jobs/grants";
import type { GivenParams } from "../src/jobs/params";
import { dryRun } from "../src/processing/dry-run";
import { RateLimiters } from "../src/processing/rate-limit";
import { assertKeysFileReadable } from "../src/runs/run-keys";
import { getRun } from "../src/runs/runs";
import type { SubsetRequest } from "../src/runs/subset";
import { createProgress } from "../src/terminal/progress";
import { registerSchedules } from "../workflows/schedule-tick";
import { runSettings, startRun } from "../workflows/start-run";
import { generate } from "./generate";
import { ImportError, importDirectory, isFailed } from "./import";
import type { StatusMix } from "./user-rows";

/** The seed tool's commands as functions, shared by the CLI (seed/cli.ts) and `npm start` (app/main.ts). */

/** Fixed, so that generated files are reproducible from the seed alone. */
export const DEFAULT_AS_OF = "2026-01-01T00:00:00Z";

/**
 * The migrations; with `roles`, the schema's owner first (sql/schema-owner.sql: the migrations
 * then run as it), and the roles' grants on what they created after (runRoles); then the
 * schedules of the jobs that have one (workflows/schedule-tick.ts).
 */
export async function runSchema(pool: pg.Pool, options: { roles: boolean } = { roles: false }) {
  const owner = options.roles ? await setUpSchemaOwner(pool) : {};
  const schema = await migrate(pool, getLogger());
  const roles = options.roles ? await grantRoles(pool) : {};
  // the jobs' schedules and their first ticks, before any worker starts: where KEDA starts the
  // pods, none would start to write them (a due tick counts in the backlog, which starts one)
  const schedules = await registerSchedules(withPool(pool), getCatalog().jobs, { forget: true });
  return { ...schema, ...owner, ...roles, ...(schedules > 0 && { schedules }) };
}

/** The schema's owner, the deployment's roles and their grants, on a schema already migrated. */
export async function runRoles(pool: pg.Pool) {
  const owner = await setUpSchemaOwner(pool);
  return { ...owner, ...(await grantRoles(pool)) };
}

/**
 * The schema's owner (sql/schema-owner.sql), handed what an earlier setup left to another owner
 * (src/db/schema-owner.ts): before the migrations, which may alter it.
 */
async function setUpSchemaOwner(pool: pg.Pool): Promise<{ handedToOwner: number }> {
  await pool.query(await fs.readFile(SCHEMA_OWNER_FILE, "utf8"));
  const names = createdNames((await readMigrations()).map((migration) => migration.sql));
  const { transferred } = await withPool(pool)((client) => transferToSchemaOwner(client, names));
  if (transferred > 0)
    getLogger().info({ transferred }, `schema owner: ${transferred} object(s) handed to batch_admin`);
  return { handedToOwner: transferred };
}

/**
 * Creates the deployment's roles and their grants (sql/roles.sql), and lets the worker role at
 * each job's table (src/jobs/grants.ts); run after the migrations.
 */
async function grantRoles(pool: pg.Pool) {
  await pool.query(await fs.readFile(ROLES_FILE, "utf8"));
  const jobs = getCatalog().jobs;
  await withPool(pool)(async (client) => {
    for (const job of jobs) await grantWorkerAccess(client, job);
  });
  return {
    roles: ["batch_admin", "batch_worker", "batch_monitor", "batch_viewer"],
    jobTables: jobs.map((job) => job.table),
  };
}

export interface GenerateArgs {
  rows: number;
  out: string;
  rowsPerFile: number;
  seed: number;
  statusMix: StatusMix;
  asOf: string;
  threads?: number;
}

export async function runGenerate(args: GenerateArgs) {
  const progress = createProgress({ label: "generate", total: args.rows, unit: "rows", logger: getLogger() });
  const started = performance.now();
  const result = await generate({
    rows: args.rows,
    outDir: args.out,
    rowsPerFile: args.rowsPerFile,
    seed: args.seed,
    statusMix: args.statusMix,
    asOf: args.asOf,
    threads: args.threads,
    onProgress: (rows) => progress.update(rows),
  });
  progress.finish();
  const seconds = (performance.now() - started) / 1000;
  return {
    files: result.files.length,
    rows: args.rows,
    bytes: result.bytes,
    seconds,
    rowsPerSecond: Math.round(args.rows / seconds),
  };
}

export async function runImport(pool: pg.Pool, dir: string, concurrency: number, config: Config) {
  const progress = createProgress({ label: "import", total: 0, unit: "bytes", logger: getLogger() });
  const summary = await importDirectory({
    pool,
    dir,
    concurrency,
    logger: getLogger(),
    startedBy: config.podName,
    onProgress: (bytes, total) => progress.update(bytes, total),
  });
  progress.finish();
  const failed = summary.files.filter(isFailed);
  return {
    importRun: summary.runId,
    files: summary.files.length,
    imported: summary.files.filter((file) => file.status === "imported").length,
    skipped: summary.files.filter((file) => file.status === "skipped").length,
    failed: failed.map((file) => file.error),
    rows: summary.rowsImported,
  };
}

/**
 * Throws when a file failed to import: its rows are not there, and the job must not go on. The
 * message is one line, naming each file and line.
 */
export function assertImported(result: { failed: string[] }): void {
  if (result.failed.length > 0) {
    throw new ImportError(
      `${result.failed.length} file(s) failed to import, none of their rows loaded (fix them and import again: ` +
        `imported files are skipped): ${result.failed.join("; ")}`,
    );
  }
}

/**
 * Starts a run of the job and plans it at once (its chunk jobs enqueued when this returns); a
 * run of that name that exists is returned as it is. A run its job's beforeRun refused fails
 * the command. With `canary`, the run works through its first `canary` rows and pauses itself.
 */
export async function runEnqueue(
  pool: pg.Pool,
  job: JobDefinition,
  batchName: string,
  config: Config,
  params: GivenParams = {},
  actor = config.podName,
  subset?: SubsetRequest,
  canary?: number,
) {
  const db = withPool(pool);
  if (subset && "keysPath" in subset) assertKeysFileReadable(subset.keysPath);
  const settings = { ...runSettings(config, job, params), ...(canary !== undefined && { canary }) };
  const { run, created, unmatched } = await startRun(db, job, batchName, settings, actor, "now", subset);
  if (unmatched && unmatched.count > 0) {
    getLogger().warn(
      { run: run.id, unmatchedKeys: unmatched.count, examples: unmatched.examples },
      `enqueue: ${unmatched.count} key(s) of the file name no row of job ${job.name} (not in ${job.table}, or not its where): ` +
        `${unmatched.examples.join(", ")}${unmatched.count > unmatched.examples.length ? ", ..." : ""}`,
    );
  }
  const planned = (await db((client) => getRun(client, run.id))) ?? run;
  if (created && planned.status === "failed") throw new CommandError(planned.errorMessage ?? "the run was refused");
  return {
    run: run.id,
    batch: run.name,
    job: run.job,
    created,
    status: planned.status,
    chunks: planned.chunksTotal,
    rows: planned.totalRecords,
    ...(planned.settings.params ? { params: planned.settings.params } : {}),
    ...(planned.settings.subset ? { subset: planned.settings.subset } : {}),
    ...(unmatched ? { unmatchedKeys: unmatched } : {}),
  };
}

/**
 * A dry run of the job (src/processing/dry-run.ts): its function over a sample of `sample` rows
 * a run would take, with the settings a run started here and a worker of this environment would
 * have (MAX_ATTEMPTS, ROW_CONCURRENCY, ROW_TIMEOUT_S), with the parameters given, checked as a
 * start checks them, and under the job's rate limit.
 */
export async function runDryRun(
  pool: pg.Pool,
  job: JobDefinition,
  sample: number,
  config: Config,
  given: GivenParams = {},
  subset?: SubsetRequest,
) {
  const db = withPool(pool);
  const limiters = new RateLimiters({
    db,
    logger: getLogger(),
    override: { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst },
  });
  return dryRun(db, job, {
    sample,
    maxAttempts: runSettings(config, job).maxAttempts,
    concurrency: config.rowConcurrency ?? job.defaults.rowConcurrency,
    timeoutMs: config.rowTimeoutMs ?? job.defaults.rowTimeoutMs,
    limiter: limiters.of(job),
    params: given,
    subset: subset && ("keysPath" in subset ? subset : { from: subset.from?.toString(), to: subset.to?.toString() }),
  });
}
