import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { CSV_COLUMNS } from "../seed/user-rows";
import { PROJECT_ROOT } from "../src/base/paths";
import { insertSyntheticUsers } from "./synthetic-users";

/** The processes and database chores every section of `npm run bench` uses. */

export const DIST = path.join(PROJECT_ROOT, "dist");
export const WORKER_CLI = path.join(PROJECT_ROOT, "node_modules/graphile-worker/dist/cli.js");
export const BASELINES = process.env.BASELINES_SCRIPT ?? path.resolve(PROJECT_ROOT, "../shared/baselines/run.sh");

/**
 * The settings docs/production.md gives for a database nobody else uses, which every section but
 * beside-app measures: no health reads, slices of about a second, no pause after each.
 */
export const FULL_SPEED = { THROTTLE: "off", MAX_LOCK_HOLD_S: "2", SLICE_PAUSE_RATIO: "0" };

export const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
export const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;

export interface Ran {
  code: number | null;
  seconds: number;
  /** Date.now() when the process was spawned and when it closed. */
  startedAt: number;
  endedAt: number;
  stdout: string;
  stderr: string;
  peakRssMb?: number;
}

/**
 * Runs a command to its end; with `measureRss`, a node command reports its peak RSS. Aborting
 * `stop` ends it with SIGTERM (a long-running worker, stopped as Kubernetes stops a pod).
 */
export function exec(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  measureRss = false,
  stop?: AbortSignal,
): Promise<Ran> {
  const rssFile = path.join(os.tmpdir(), `peak-rss-${randomBytes(4).toString("hex")}`);
  const nodeArgs = measureRss ? ["--require", path.join(DIST, "bench/peak-rss.js"), ...args] : args;
  const startedAt = Date.now();
  const started = performance.now();
  const child = spawn(command, nodeArgs, {
    cwd: PROJECT_ROOT,
    env: { ...env, ...(measureRss ? { PEAK_RSS_FILE: rssFile } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
    signal: stop,
    killSignal: "SIGTERM",
  });
  let stdout = "";
  let stderr = "";
  // a failed spawn is reported here, then closes; a stop, wanted, is reported here too
  child.on("error", (error) => {
    if (error.name !== "AbortError") stderr += `${error.message}\n`;
  });
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) =>
    child.on("close", (code) => {
      const seconds = (performance.now() - started) / 1000;
      let peakRssMb: number | undefined;
      if (fs.existsSync(rssFile)) {
        peakRssMb = round(Number(fs.readFileSync(rssFile, "utf8")) / 1024);
        fs.rmSync(rssFile);
      }
      resolve({ code, seconds, startedAt, endedAt: Date.now(), stdout, stderr, peakRssMb });
    }),
  );
}

export function mustSucceed(what: string, ran: Ran): Ran {
  if (ran.code !== 0) throw new Error(`${what} failed (exit ${ran.code}):\n${ran.stderr.slice(-2000)}`);
  return ran;
}

export class Bench {
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly url: string,
    readonly pool: pg.Pool,
    private readonly dataRoot: string,
  ) {
    const env: NodeJS.ProcessEnv = {
      ...FULL_SPEED,
      ...process.env,
      DATABASE_URL: url,
      LOG_LEVEL: "warn",
      METRICS_PORT: "0",
    };
    for (const key of Object.keys(env)) if (key.startsWith("npm_")) delete env[key];
    this.env = env;
  }

  node(args: string[], extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    return exec(process.execPath, args, { ...this.env, ...extra }, measureRss);
  }

  seed(args: string[], extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    return this.node([path.join(DIST, "seed/cli.js"), ...args], extra, measureRss);
  }

  worker(extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    return this.node([WORKER_CLI, "-C", path.join(DIST, ".graphile-worker.config.js"), "--once"], extra, measureRss);
  }

  /** Files of `rows` generated users, made once per size. */
  async files(rows: number): Promise<{ dir: string; generate?: Ran }> {
    const dir = path.join(this.dataRoot, String(rows));
    if (fs.existsSync(dir)) return { dir };
    const generate = mustSucceed(
      "generate",
      await this.seed(["generate", "--rows", String(rows), "--out", dir], {}, true),
    );
    return { dir, generate };
  }

  /** An empty users table (and no runs), as a fresh database would have it. */
  async reset(): Promise<void> {
    await this.pool.query("TRUNCATE users, imported_files, batch_jobs CASCADE");
    await this.pool.query("DELETE FROM worker_sessions");
  }

  async settle(): Promise<void> {
    await this.pool.query("VACUUM ANALYZE users");
    await this.pool.query("CHECKPOINT");
  }

  async importFiles(dir: string, measureRss = false): Promise<Ran> {
    return mustSucceed("import", await this.seed(["import", "--dir", dir], {}, measureRss));
  }

  async psqlCopy(dir: string): Promise<number> {
    const started = performance.now();
    for (const file of fs
      .readdirSync(dir)
      .filter((name) => name.endsWith(".csv"))
      .sort()) {
      const copy = `\\copy users (${CSV_COLUMNS.join(", ")}) FROM '${path.join(dir, file)}' WITH (FORMAT csv, HEADER true)`;
      mustSucceed(
        "psql \\copy",
        await exec("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", this.url, "-c", copy], this.env),
      );
    }
    await this.pool.query("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))");
    return (performance.now() - started) / 1000;
  }

  /** Starts a run over the users table (its chunk jobs planned when this returns); the rows it takes. */
  async enqueue(name: string, extra: NodeJS.ProcessEnv = {}): Promise<number> {
    const enqueued = mustSucceed("enqueue", await this.seed(["enqueue", "--batch-name", name], extra));
    return (JSON.parse(enqueued.stdout) as { rows: number }).rows;
  }

  async mustHaveCompleted(name: string): Promise<void> {
    const { rows: status } = await this.pool.query("SELECT status FROM batch_jobs WHERE batch_name = $1", [name]);
    if (status[0]?.status !== "completed") throw new Error(`run ${name} ended ${status[0]?.status}`);
  }

  /** Starts a run over the users table and drains it with one worker process. */
  async process(name: string, extra: NodeJS.ProcessEnv = {}, measureRss = false): Promise<Ran & { rows: number }> {
    const rows = await this.enqueue(name, extra);
    const ran = mustSucceed("worker", await this.worker(extra, measureRss));
    await this.mustHaveCompleted(name);
    return { ...ran, rows };
  }

  /** The share of the worker's wall time its chunk slots spent inside chunks. */
  async chunkShare(name: string, wallSeconds: number, slots: number): Promise<number> {
    const { rows } = await this.pool.query(
      `SELECT coalesce(sum(extract(epoch FROM c.finished_at - c.started_at)), 0)::float8 AS seconds
         FROM batch_chunks c JOIN batch_jobs j ON j.id = c.run_id WHERE j.batch_name = $1`,
      [name],
    );
    return rows[0].seconds / (wallSeconds * slots);
  }

  async baselines(rows: number): Promise<Record<string, number> | undefined> {
    if (!fs.existsSync(BASELINES)) return undefined;
    const ran = mustSucceed("baselines", await exec("bash", [BASELINES, String(rows), "4"], this.env));
    return Object.fromEntries(
      [...ran.stdout.matchAll(/^(\w+) rows=\d+ seconds=[\d.]+ rows_per_s=(\d+)/gm)].map((m) => [m[1], Number(m[2])]),
    );
  }

  insertUsers(rows: number): Promise<void> {
    return insertSyntheticUsers(this.pool, rows);
  }

  /** A fresh table of `rows` synthetic users, vacuumed and checkpointed. */
  async freshUsers(rows: number): Promise<void> {
    await this.reset();
    await this.insertUsers(rows);
    await this.settle();
  }
}
