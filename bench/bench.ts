import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { CSV_COLUMNS } from "../seed/user-rows";
import { failOnUsage } from "../src/cli-args";
import { printResult, runCommand, table } from "../src/cli-output";
import { getConfig } from "../src/config";
import { getLogger } from "../src/context";
import { PROJECT_ROOT } from "../src/paths";
import { withScratchDatabase } from "./scratch-database";
import { insertSyntheticUsers } from "./synthetic-users";

/**
 * `npm run bench [-- --quick]`: the system against its reference figures, on one database, in
 * one run, several times each, medians reported (BENCHMARKS.md says how to read them).
 *
 *  - processing without I/O, default settings, against ../shared/baselines/run.sh (one UPDATE,
 *    the database's ceiling `limit`, the original's claim loop `seed`);
 *  - processing with 2 ms of I/O per row in one worker process, against the original's pod
 *    (8 records in flight at 2 ms: 4,000 rows/s);
 *  - import against psql \copy of the same files into the same empty table; generation;
 *  - peak memory of generate, import and a worker at two sizes;
 *  - the autoscaling query at a large backlog, and its plan;
 *  - queue overhead: enqueue to first chunk, and the share of worker time outside chunks.
 */

const DIST = path.join(PROJECT_ROOT, "dist");
const BASELINES = process.env.BASELINES_SCRIPT ?? path.resolve(PROJECT_ROOT, "../shared/baselines/run.sh");
const ORIGINAL_POD_ROWS_PER_SECOND = 4000;

interface Sizes {
  rows: number;
  delayRows: number;
  memoryRows: [small: number, large: number];
  backlogRows: number;
  repeat: number;
}

const FULL: Sizes = {
  rows: 1_000_000,
  delayRows: 200_000,
  memoryRows: [500_000, 5_000_000],
  backlogRows: 10_000_000,
  repeat: 3,
};
const QUICK: Sizes = { rows: 20_000, delayRows: 5_000, memoryRows: [5_000, 20_000], backlogRows: 50_000, repeat: 1 };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;

interface Ran {
  code: number | null;
  seconds: number;
  stdout: string;
  stderr: string;
  peakRssMb?: number;
}

/** Runs a command to its end; with `measureRss`, a node command reports its peak RSS. */
function exec(command: string, args: string[], env: NodeJS.ProcessEnv, measureRss = false): Promise<Ran> {
  const rssFile = path.join(os.tmpdir(), `peak-rss-${randomBytes(4).toString("hex")}`);
  const nodeArgs = measureRss ? ["--require", path.join(DIST, "bench/peak-rss.js"), ...args] : args;
  const started = performance.now();
  const child = spawn(command, nodeArgs, {
    cwd: PROJECT_ROOT,
    env: { ...env, ...(measureRss ? { PEAK_RSS_FILE: rssFile } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
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
      resolve({ code, seconds, stdout, stderr, peakRssMb });
    }),
  );
}

function mustSucceed(what: string, ran: Ran): Ran {
  if (ran.code !== 0) throw new Error(`${what} failed (exit ${ran.code}):\n${ran.stderr.slice(-2000)}`);
  return ran;
}

class Bench {
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly url: string,
    private readonly pool: pg.Pool,
    private readonly dataRoot: string,
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn", METRICS_PORT: "0" };
    for (const key of Object.keys(env)) if (key.startsWith("npm_")) delete env[key];
    this.env = env;
  }

  private node(args: string[], extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    return exec(process.execPath, args, { ...this.env, ...extra }, measureRss);
  }

  seed(args: string[], extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    return this.node([path.join(DIST, "seed/cli.js"), ...args], extra, measureRss);
  }

  worker(extra: NodeJS.ProcessEnv = {}, measureRss = false) {
    const cli = path.join(PROJECT_ROOT, "node_modules/graphile-worker/dist/cli.js");
    return this.node([cli, "-C", path.join(DIST, ".graphile-worker.config.js"), "--once"], extra, measureRss);
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

  /** Starts a run over the users table and drains it with one worker process. */
  async process(name: string, extra: NodeJS.ProcessEnv = {}, measureRss = false): Promise<Ran & { rows: number }> {
    const enqueued = mustSucceed("enqueue", await this.seed(["enqueue", "--batch-name", name], extra));
    const { rows } = JSON.parse(enqueued.stdout) as { rows: number };
    const ran = mustSucceed("worker", await this.worker(extra, measureRss));
    const { rows: status } = await this.pool.query("SELECT status FROM batch_jobs WHERE batch_name = $1", [name]);
    if (status[0]?.status !== "completed") throw new Error(`run ${name} ended ${status[0]?.status}`);
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
}

async function main(argv: string[]): Promise<void> {
  const args = await yargs(argv)
    .option("quick", { type: "boolean", default: false, describe: "small sizes, once each: checks that it runs" })
    .strict()
    .fail(failOnUsage)
    .parseAsync();
  const sizes = args.quick ? QUICK : FULL;
  const config = getConfig();
  const logger = getLogger();
  const log = (line: string) => logger.info(line);
  await withScratchDatabase("bench", async ({ url, pool }) => {
    const dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), "bench-data-"));
    try {
      await measure(new Bench(url, pool, dataRoot), pool, url, sizes, config.workers, log);
    } finally {
      fs.rmSync(dataRoot, { recursive: true, force: true });
    }
  });
}

async function measure(
  bench: Bench,
  pool: pg.Pool,
  url: string,
  sizes: Sizes,
  workers: number,
  log: (line: string) => void,
): Promise<void> {
  const results = {} as Results;
  mustSucceed("schema", await bench.seed(["schema"]));

  log(`generating ${sizes.rows} rows`);
  const { dir, generate } = await bench.files(sizes.rows);
  results.generate = {
    rows: sizes.rows,
    seconds: round(generate?.seconds ?? 0, 2),
    rowsPerSecond: round(sizes.rows / (generate?.seconds ?? 1)),
  };

  const imports: number[] = [];
  const copies: number[] = [];
  const processing: number[] = [];
  const shares: number[] = [];
  const references: Record<string, number[]> = {};
  for (let i = 0; i < sizes.repeat; i++) {
    log(`round ${i + 1} of ${sizes.repeat}: import, psql \\copy, processing, baselines`);
    await bench.reset();
    imports.push((await bench.importFiles(dir)).seconds);
    await bench.reset();
    copies.push(await bench.psqlCopy(dir));
    await bench.settle();
    const run = `plain-${i}`;
    const processed = await bench.process(run);
    processing.push(processed.rows / processed.seconds);
    shares.push(await bench.chunkShare(run, processed.seconds, workers));
    for (const [reference, rowsPerSecond] of Object.entries((await bench.baselines(sizes.rows)) ?? {})) {
      references[reference] = [...(references[reference] ?? []), rowsPerSecond];
    }
  }
  const ours = median(processing);
  const limit = references.limit ? median(references.limit) : undefined;
  const seedLoop = references.seed ? median(references.seed) : undefined;
  results.processing = {
    rows: sizes.rows,
    rowsPerSecond: round(ours),
    runs: processing.map((r) => round(r)),
    references: Object.fromEntries(Object.entries(references).map(([k, v]) => [k, round(median(v))])),
    timeInChunks: round(median(shares), 3),
  };
  results.import = {
    rows: sizes.rows,
    seconds: round(median(imports), 2),
    psqlCopySeconds: round(median(copies), 2),
    rowsPerSecond: round(sizes.rows / median(imports)),
  };

  log(`processing ${sizes.delayRows} rows with 2 ms of I/O each`);
  await bench.reset();
  await bench.insertUsers(sizes.delayRows);
  await bench.settle();
  const delayed = await bench.process("io-bound", { PROCESS_DELAY_MS: "2" });
  const ioRate = delayed.rows / delayed.seconds;
  results.ioBound = {
    rows: sizes.delayRows,
    rowsPerSecond: round(ioRate),
    originalPod: ORIGINAL_POD_ROWS_PER_SECOND,
  };

  log("queue latency: enqueue to first chunk with a worker waiting");
  results.queueLatencyMs = await queueLatency(bench, pool, url);

  const memory: Record<string, Record<string, number | undefined>> = {};
  for (const rows of sizes.memoryRows) {
    log(`memory at ${rows} rows`);
    const files = await bench.files(rows);
    await bench.reset();
    const imported = await bench.importFiles(files.dir, true);
    await bench.settle();
    const worked = await bench.process(`memory-${rows}`, {}, true);
    memory[rows] = {
      generate: files.generate?.peakRssMb,
      import: imported.peakRssMb,
      worker: worked.peakRssMb,
    };
  }
  results.peakRssMb = memory;

  log(`autoscaling query at ${sizes.backlogRows} pending rows`);
  await bench.reset();
  await bench.insertUsers(sizes.backlogRows);
  await bench.settle();
  mustSucceed("enqueue", await bench.seed(["enqueue", "--batch-name", "backlog"]));
  results.autoscalingQuery = await queryCost(pool, sizes.backlogRows);

  printReport(results, limit, seedLoop);
  printResult(results);
}

/** Milliseconds from a run's start to its first chunk starting, a worker already listening. */
async function queueLatency(bench: Bench, pool: pg.Pool, url: string): Promise<number> {
  await bench.reset();
  await bench.insertUsers(10_000);
  const cli = path.join(PROJECT_ROOT, "node_modules/graphile-worker/dist/cli.js");
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn", METRICS_PORT: "0" };
  for (const key of Object.keys(env)) if (key.startsWith("npm_")) delete env[key];
  const worker = spawn(process.execPath, [cli, "-C", path.join(DIST, ".graphile-worker.config.js")], {
    env,
    stdio: "ignore",
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    mustSucceed("enqueue", await bench.seed(["enqueue", "--batch-name", "latency"]));
    for (let i = 0; i < 300; i++) {
      const { rows } = await pool.query(
        `SELECT extract(epoch FROM min(c.started_at) - (SELECT at FROM batch_events e
                 WHERE e.run_id = j.id AND e.event = 'started')) * 1000 AS ms
           FROM batch_jobs j JOIN batch_chunks c ON c.run_id = j.id WHERE j.batch_name = 'latency' GROUP BY j.id`,
      );
      if (rows[0]?.ms != null) return round(Number(rows[0].ms), 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("no chunk started");
  } finally {
    worker.kill("SIGTERM");
  }
}

/** The trigger's query and the original's row count, timed at a large backlog, with their plans. */
async function queryCost(pool: pg.Pool, rows: number) {
  const time = async (sql: string, times: number) => {
    const runs: number[] = [];
    for (let i = 0; i < times; i++) {
      const started = performance.now();
      await pool.query(sql);
      runs.push(performance.now() - started);
    }
    return round(median(runs), 3);
  };
  const trigger = "SELECT rows_left FROM batch_backlog";
  const original = "SELECT COUNT(1) FROM users WHERE batch_status IN ('pending','failed')";
  const { rows: value } = await pool.query(trigger);
  const { rows: plan } = await pool.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${trigger}`);
  return {
    pendingRows: rows,
    value: Number(value[0].rows_left),
    medianMs: await time(trigger, 20),
    originalQueryMs: await time(original, 3),
    plan: plan.map((row) => row["QUERY PLAN"] as string),
  };
}

interface Results {
  generate: { rows: number; seconds: number; rowsPerSecond: number };
  processing: {
    rows: number;
    rowsPerSecond: number;
    runs: number[];
    references: Record<string, number>;
    timeInChunks: number;
  };
  import: { rows: number; seconds: number; psqlCopySeconds: number; rowsPerSecond: number };
  ioBound: { rows: number; rowsPerSecond: number; originalPod: number };
  queueLatencyMs: number;
  peakRssMb: Record<string, Record<string, number | undefined>>;
  autoscalingQuery: Awaited<ReturnType<typeof queryCost>>;
}

function printReport(results: Results, limit: number | undefined, seedLoop: number | undefined): void {
  const ratio = (ours: number, reference: number | undefined) => (reference ? `${round(ours / reference, 2)}x` : "n/a");
  const p = results.processing;
  const io = results.ioBound;
  const imp = results.import;
  const rows = [
    [
      "processing, no I/O (rows/s)",
      String(p.rowsPerSecond),
      `limit ${limit ?? "n/a"}`,
      ratio(p.rowsPerSecond, limit),
      ">= 1.0x",
    ],
    ["", "", `seed ${seedLoop ?? "n/a"}`, ratio(p.rowsPerSecond, seedLoop), ">= 3.5x"],
    ["", "", `single ${p.references.single ?? "n/a"}`, ratio(p.rowsPerSecond, p.references.single), ""],
    [
      "processing, 2 ms I/O, 1 process",
      String(io.rowsPerSecond),
      `original pod ${io.originalPod}`,
      ratio(io.rowsPerSecond, io.originalPod),
      ">= 5x",
    ],
    [
      "import (s)",
      String(imp.seconds),
      `psql \\copy ${imp.psqlCopySeconds}`,
      `${round(imp.psqlCopySeconds / imp.seconds, 2)}x`,
      ">= 1.0x",
    ],
    ["generate (rows/s)", String(results.generate.rowsPerSecond), "", "", ""],
    ["enqueue to first chunk (ms)", String(results.queueLatencyMs), "", "", ""],
    ["worker time inside chunks", `${round(p.timeInChunks * 100, 1)}%`, "", "", ""],
    [
      "autoscaling query (ms)",
      String(results.autoscalingQuery.medianMs),
      `original ${results.autoscalingQuery.originalQueryMs}`,
      "",
      `at ${results.autoscalingQuery.pendingRows} pending`,
    ],
    ...Object.entries(results.peakRssMb).map(([size, m]) => [
      `peak RSS MB at ${size} rows`,
      `gen ${m.generate ?? "-"} / imp ${m.import} / wrk ${m.worker}`,
      "",
      "",
      "< 256, flat",
    ]),
  ];
  process.stderr.write(`\n${table(["measure", "ours", "reference", "ratio", "target"], rows)}\n\n`);
}

runCommand("bench", () => main(hideBin(process.argv)));
