import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { freePort } from "../src/base/free-port";
import { MAX_SLICE_ROWS } from "../src/chunks/slice-sizer";
import { twinClient, twinStatement, usersIdRange } from "./ceiling";
import { type Bench, DIST, exec, FULL_SPEED, median, mustSucceed, type Ran, round } from "./harness";

/**
 * Beside an application: an "application" of pgbench clients reads and updates random users rows
 * at a fixed rate, alone, then beside a run (one real worker process on the same table), then
 * alone again on the same table once the run is stopped, without I/O and with PROCESS_DELAY_MS
 * of I/O per record, for each profile of settings below. At a fixed rate one stall (a
 * checkpoint's writes, a scheduler hiccup) delays every transaction scheduled behind it, so the
 * p99 of a short window is its worst stall: the two alone windows, pooled, see the machine as
 * the beside window does, and each window counts the checkpoints that ended in it. Reported:
 * the application's latencies (pgbench's per-transaction log), from the scheduled start and
 * from the transaction's own start, its waits on locks held by the run's sessions (pg_locks
 * sampled every 20 ms), the run's rate over the application's window and the rows of its
 * slices. Then what the database itself does to the application at the pace the busy-primary
 * run reached: the job's SQL twin, with no worker process, a statement per slice of that run,
 * beside the same application. Then the cost of the health reads: the same run with throttling on and off,
 * alternated on the same rows, with every signal healthy.
 */

/**
 * The settings measured, as the worker's environment (variables a version does not know are
 * ignored by it). "busy primary" is what docs/production.md recommends beside a live application;
 * "full speed" what it recommends on a database nobody else uses (the other sections' settings).
 */
export const PROFILES: Record<string, NodeJS.ProcessEnv> = {
  "full speed": FULL_SPEED,
  defaults: {},
  // one chunk at a time (one database session writing, less of the CPU), 48 records in flight to
  // keep a third of full speed with I/O, the default lock bound and throttling spelled out (the
  // docs/production.md's recommendation lists them); the lock-wait limit catches what the bound
  // does not (a record written apart, say); a pause after each slice twice as long as its
  // statements took leaves the database idle two thirds of the time the run would take of it
  // (records that wait on I/O leave it idle already, and pay next to nothing for it)
  "busy primary": {
    WORKERS: "1",
    ROW_CONCURRENCY: "48",
    MAX_LOCK_HOLD_S: "0.1",
    THROTTLE: "on",
    THROTTLE_MAX_LOCK_WAIT_S: "0.5",
    SLICE_PAUSE_RATIO: "2",
  },
};

/** A profile starts from the built-in defaults, not from the full speed the other sections run at. */
const FROM_DEFAULTS: NodeJS.ProcessEnv = Object.fromEntries(Object.keys(FULL_SPEED).map((key) => [key, undefined]));

/** The application: 4 clients on 2 threads, 400 transactions/s between them. */
const APP = { rate: 400, clients: 4, threads: 2 };

/** Each transaction reads one random user and updates it, as an application's request would. */
const APP_SCRIPT = `\\set id random(1, :users)
BEGIN;
SELECT name, email, salary FROM users WHERE id = :id;
UPDATE users SET salary = salary + 1 WHERE id = :id;
END;
`;

/**
 * The application's sessions waiting on a lock that a session other than the application's
 * holds (in this database, the run's), with how long each has waited so far. Reads only the
 * statistics views; pg_blocking_pids takes the lock manager's partition locks briefly.
 */
const LOCK_WAITS_SQL = `
  SELECT l.pid, min(l.waitstart)::text AS since,
         extract(epoch FROM clock_timestamp() - min(l.waitstart)) * 1000 AS waited_ms
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE NOT l.granted AND l.waitstart IS NOT NULL
     AND a.datname = current_database() AND a.application_name = 'pgbench'
     AND EXISTS (SELECT 1 FROM unnest(pg_blocking_pids(l.pid)) AS b(pid)
                   JOIN pg_stat_activity w ON w.pid = b.pid
                  WHERE w.application_name <> 'pgbench')
   GROUP BY l.pid`;
const LOCK_SAMPLE_MS = 20;

/**
 * Checkpoints the server has ended since its statistics were reset, timed or requested: counted
 * in pg_stat_checkpointer from PostgreSQL 17 (the embedded server), in pg_stat_bgwriter before.
 */
const CHECKPOINTS_SQL = {
  since17: "SELECT num_timed + num_requested AS n FROM pg_stat_checkpointer",
  before17: "SELECT checkpoints_timed + checkpoints_req AS n FROM pg_stat_bgwriter",
};

/** Autovacuum workers busy in this database (on a table of a previous case, say). */
const AUTOVACUUMS_SQL = `SELECT count(*)::int AS n FROM pg_stat_activity
   WHERE backend_type = 'autovacuum worker' AND datname = current_database()`;
/** How long an alone window waits for them at most, then starts beside them (its figures show it). */
const AUTOVACUUM_WAIT_MS = 60_000;
/** How long a window waits at most for the checkpoint before it to be counted. */
const CHECKPOINT_COUNT_WAIT_MS = 5_000;

export interface BesideAppSizes {
  /** Rows of the run without I/O, and with it: enough that the run outlasts the application's window. */
  noIoRows: number;
  ioRows: number;
  ioDelayMs: number;
  /** The application's window, alone and beside the run. */
  appSeconds: number;
  /** The throttling on/off comparison: rows of each run, and rounds of on, off. */
  throttleRows: number;
  throttleRounds: number;
}

export interface AppFigures {
  transactions: number;
  /** pgbench's latency at a fixed rate: from the transaction's scheduled start to its end. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The same without the schedule lag: from the transaction's own start. */
  p99FromStartMs: number;
  /** Waits on the run's locks seen by sampling, and the longest (to within a sample). */
  lockWaits: number;
  longestLockWaitMs: number;
  /** Checkpoints that ended in the window: a stall they cause explains a bad p99. */
  checkpoints: number;
}

/** The application alone and beside a writer, and the writer's rate over its window. */
export interface BesideFigures {
  rows: number;
  /** The two alone windows, just before and just after the beside one, pooled. */
  alone: AppFigures;
  /** Each of them, so that a disturbed one shows. */
  aloneBefore: AppFigures;
  aloneAfter: AppFigures;
  beside: AppFigures;
  /** beside / alone (pooled), of the p99 from the scheduled start and from the transaction's own. */
  p99Ratio: number;
  p99FromStartRatio: number;
  /** Rows the writer completed or failed over the application's window, per second. */
  runRowsPerSecond: number;
  /** Rows a slice (a statement of the twin) wrote on average over the window, when known. */
  rowsPerSlice: number | undefined;
  /** Whether the writer was still going when the application's window ended. */
  covered: boolean;
}

/** Beside a run of a profile's settings, without or with I/O. */
export interface BesideCase extends BesideFigures {
  profile: string;
  delayMs: number;
}

/** The SQL twin beside the application, held to the busy-primary run's rate without I/O. */
export interface TwinCase extends BesideFigures {
  /** The pace it was held to, rows/s, and the ids per statement. */
  paceRowsPerSecond: number;
  rangeRows: number;
  /**
   * Where the ids per statement come from: the busy-primary run's slices over its window
   * (its worker's metrics), or, when they could not be read, the most rows a slice claims.
   */
  rangeFrom: "busy-primary slices" | "MAX_SLICE_ROWS";
  /** Its rate over the window against the full-speed run's without I/O, when that ran. */
  ofFullSpeed: number | undefined;
}

export interface ThrottleCost {
  rows: number;
  onRowsPerSecond: number;
  offRowsPerSecond: number;
  /** on / off, of the medians. */
  ratio: number;
  rounds: { on: number[]; off: number[] };
}

export interface BesideApp {
  app: typeof APP & { seconds: number };
  profiles: Record<string, NodeJS.ProcessEnv>;
  cases: BesideCase[];
  /** "SQL twin at the busy-primary pace": no I/O, the rows of the runs without it. */
  sqlTwin: TwinCase;
  throttle: ThrottleCost;
}

/** Debian's pgbench: on PATH through postgresql-common's wrapper, or in a server's bin directory. */
function pgbenchBinary(): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "pgbench");
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const candidate = path.join(root, version, "bin/pgbench");
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error("pgbench not found (on PATH or in /usr/lib/postgresql/*/bin): install postgresql's server binaries");
}

const percentile = (sorted: number[], q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;

/** Latencies (ms) from pgbench's per-transaction logs: client, number, µs, script, epoch s, µs, lag µs. */
function readTransactionLog(dir: string): { latencies: number[]; fromStart: number[] } {
  const latencies: number[] = [];
  const fromStart: number[] = [];
  for (const file of fs.readdirSync(dir)) {
    for (const line of fs.readFileSync(path.join(dir, file), "utf8").split("\n")) {
      const fields = line.split(" ");
      const micros = Number(fields[2]);
      if (fields.length < 7 || !Number.isFinite(micros)) continue;
      latencies.push(micros / 1000);
      fromStart.push((micros - Number(fields[6])) / 1000);
    }
  }
  return { latencies: latencies.sort((a, b) => a - b), fromStart: fromStart.sort((a, b) => a - b) };
}

/** Samples the application's waits on others' locks until `stop`; the longest wait of each. */
async function sampleLockWaits(pool: pg.Pool, stop: AbortSignal): Promise<number[]> {
  const client = await pool.connect();
  const waits = new Map<string, number>();
  try {
    while (!stop.aborted) {
      const { rows } = await client.query<{ pid: number; since: string; waited_ms: number }>(LOCK_WAITS_SQL);
      for (const r of rows) {
        const key = `${r.pid} ${r.since}`;
        waits.set(key, Math.max(waits.get(key) ?? 0, Number(r.waited_ms)));
      }
      await sleep(LOCK_SAMPLE_MS);
    }
  } finally {
    client.release();
  }
  return [...waits.values()];
}

/** One window of the application: its transactions' latencies, its lock waits and the checkpoints. */
interface AppWindow {
  latencies: number[];
  fromStart: number[];
  waits: number[];
  checkpoints: number;
}

const checkpointsSoFar = async (pool: pg.Pool) => {
  const { rows } = await pool.query<{ version: string }>("SELECT current_setting('server_version_num') AS version");
  const sql = Number(rows[0]?.version) >= 170000 ? CHECKPOINTS_SQL.since17 : CHECKPOINTS_SQL.before17;
  return Number((await pool.query(sql)).rows[0].n);
};

/** The figures of one window, or of several pooled into one distribution. */
function appFigures(windows: AppWindow[]): AppFigures {
  const latencies = windows.flatMap((w) => w.latencies).sort((a, b) => a - b);
  const fromStart = windows.flatMap((w) => w.fromStart).sort((a, b) => a - b);
  const waits = windows.flatMap((w) => w.waits);
  return {
    transactions: latencies.length,
    p50Ms: round(percentile(latencies, 0.5), 1),
    p99Ms: round(percentile(latencies, 0.99), 1),
    maxMs: round(latencies.at(-1) ?? Number.NaN, 1),
    p99FromStartMs: round(percentile(fromStart, 0.99), 1),
    lockWaits: waits.length,
    longestLockWaitMs: round(Math.max(0, ...waits)),
    checkpoints: windows.reduce((sum, w) => sum + w.checkpoints, 0),
  };
}

/** The application for `seconds`, its lock waits sampled and the checkpoints counted meanwhile. */
async function runApp(bench: Bench, users: number, seconds: number, workDir: string): Promise<AppWindow> {
  const logDir = path.join(workDir, "log");
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir);
  const script = path.join(workDir, "app.sql");
  fs.writeFileSync(script, APP_SCRIPT);
  const checkpointsBefore = await checkpointsSoFar(bench.pool);
  const stop = new AbortController();
  const sampling = sampleLockWaits(bench.pool, stop.signal);
  let ran: Ran;
  try {
    ran = await exec(
      pgbenchBinary(),
      [
        ...["-n", "-f", script, "-D", `users=${users}`],
        ...["-R", String(APP.rate), "-c", String(APP.clients), "-j", String(APP.threads), "-T", String(seconds)],
        ...["--log", `--log-prefix=${path.join(logDir, "app")}`, bench.url],
      ],
      bench.env,
    );
  } finally {
    stop.abort();
  }
  const waits = await sampling;
  const checkpoints = (await checkpointsSoFar(bench.pool)) - checkpointsBefore;
  mustSucceed("pgbench", ran);
  return { ...readTransactionLog(logDir), waits, checkpoints };
}

/**
 * Runs `settle` (which ends in a CHECKPOINT), waits until the checkpointer has counted that
 * checkpoint (it reports one a moment after it ends: the next window would count it else), then
 * waits (a minute at most) for this database's autovacuum workers, such as a previous case left.
 */
async function settled(pool: pg.Pool, settle: () => Promise<void>): Promise<void> {
  const checkpoints = await checkpointsSoFar(pool);
  await settle();
  const counted = performance.now() + CHECKPOINT_COUNT_WAIT_MS;
  while ((await checkpointsSoFar(pool)) === checkpoints && performance.now() < counted) await sleep(50);
  const deadline = performance.now() + AUTOVACUUM_WAIT_MS;
  while ((await pool.query(AUTOVACUUMS_SQL)).rows[0].n > 0 && performance.now() < deadline) await sleep(500);
}

/** Rows and slices a worker's metrics count so far; undefined once it has ended (it serves none). */
async function sliceCounters(port: number): Promise<Slices | undefined> {
  let text: string;
  try {
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  } catch {
    return undefined;
  }
  const total = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "gm"))].reduce((sum, m) => sum + Number(m[1]), 0);
  return { rows: total("batch_rows_total"), slices: total("batch_slices_total") };
}

async function runProgress(pool: pg.Pool, name: string): Promise<{ done: number; status: string }> {
  const { rows } = await pool.query<{ done: string; status: string }>(
    `SELECT j.status, coalesce(sum(c.rows_completed + c.rows_failed), 0) AS done
       FROM batch_jobs j LEFT JOIN batch_chunks c ON c.run_id = j.id
      WHERE j.batch_name = $1 GROUP BY j.id`,
    [name],
  );
  return { done: Number(rows[0]?.done ?? 0), status: rows[0]?.status ?? "missing" };
}

/** Rows written so far, and in how many slices (statements of the twin). */
interface Slices {
  rows: number;
  slices: number;
}

/** Rows per slice between two readings of the counters, when both were read and slices ended between. */
const rowsPerSlice = (from: Slices | undefined, to: Slices | undefined) =>
  from && to && to.slices > from.slices ? round((to.rows - from.rows) / (to.slices - from.slices)) : undefined;

/** What writes beside the application: a run's worker process, or the job's SQL twin. */
interface Writer {
  /** Rows it has completed or failed so far. */
  written(): Promise<number>;
  /** Its rows and slices so far, when it can tell. */
  slices(): Promise<Slices | undefined>;
  /** Whether it has ended on its own (its rows all done, or it failed). */
  ended(): boolean;
  /** Stops it once the application's window has ended; whether it was still going until then. */
  stop(): Promise<boolean>;
}

/**
 * Alone, beside what `start` starts writing, then alone again once it is stopped: one fresh
 * table of `rows` users for the three windows. Each alone window starts on the table vacuumed
 * and checkpointed (after the import, then after the writer) with no autovacuum running in the
 * database, and autovacuum stays off on the table throughout (disabling it takes a lock that
 * cancels one already on it), so that what the import or the writer left behind runs into no
 * window and one window is not spared what the others see.
 */
async function alongside(
  bench: Bench,
  rows: number,
  seconds: number,
  workDir: string,
  start: () => Promise<Writer>,
): Promise<BesideFigures> {
  await bench.pool.query("ALTER TABLE users SET (autovacuum_enabled = off)");
  try {
    await settled(bench.pool, () => bench.freshUsers(rows));
    const aloneBefore = await runApp(bench, rows, seconds, workDir);
    const writer = await start();
    // the application's window begins once the writer is writing
    while ((await writer.written()) === 0 && !writer.ended()) await sleep(50);
    const before = { rows: await writer.written(), slices: await writer.slices() };
    const started = performance.now();
    const beside = await runApp(bench, rows, seconds, workDir);
    const after = { rows: await writer.written(), slices: await writer.slices() };
    const windowSeconds = (performance.now() - started) / 1000;
    const covered = await writer.stop();
    await settled(bench.pool, () => bench.settle());
    const aloneAfter = await runApp(bench, rows, seconds, workDir);
    const alone = appFigures([aloneBefore, aloneAfter]);
    const besideFigures = appFigures([beside]);
    return {
      rows,
      alone,
      aloneBefore: appFigures([aloneBefore]),
      aloneAfter: appFigures([aloneAfter]),
      beside: besideFigures,
      p99Ratio: round(besideFigures.p99Ms / alone.p99Ms, 1),
      p99FromStartRatio: round(besideFigures.p99FromStartMs / alone.p99FromStartMs, 1),
      runRowsPerSecond: round((after.rows - before.rows) / windowSeconds),
      rowsPerSlice: rowsPerSlice(before.slices, after.slices),
      covered,
    };
  } finally {
    await bench.pool.query("ALTER TABLE users RESET (autovacuum_enabled)");
  }
}

/** Alone, then beside a run of the profile (one worker process). */
async function besideCase(
  bench: Bench,
  profile: string,
  delayMs: number,
  rows: number,
  seconds: number,
  workDir: string,
): Promise<BesideCase> {
  const name = `beside-${profile.replace(/\W+/g, "-")}-${delayMs}ms`;
  const env = { ...FROM_DEFAULTS, ...PROFILES[profile], PROCESS_DELAY_MS: String(delayMs) };
  const figures = await alongside(bench, rows, seconds, workDir, async () => {
    await bench.enqueue(name, env);
    // its metrics count the slices it commits
    const metricsPort = await freePort();
    let exited = false;
    const worker = bench.worker({ ...env, METRICS_PORT: String(metricsPort) }).then((ran) => {
      exited = true;
      return ran;
    });
    return {
      written: async () => (await runProgress(bench.pool, name)).done,
      slices: () => sliceCounters(metricsPort),
      ended: () => exited,
      async stop() {
        const { status } = await runProgress(bench.pool, name);
        if (status === "running" || status === "pending") {
          const cancelled = await bench.node([path.join(DIST, "cli/batch.js"), "cancel", name]);
          // a run that completed in between has nothing to cancel
          if (cancelled.code !== 0 && (await runProgress(bench.pool, name)).status !== "completed")
            mustSucceed("cancel", cancelled);
        }
        mustSucceed("worker", await worker);
        return status === "running";
      },
    };
  });
  return { profile, delayMs, ...figures };
}

/**
 * The job's SQL twin (bench/sql-twin/users.ts) from one connection, `rangeRows` ids (a slice's)
 * per statement, held to `rowsPerSecond` by a pause after each statement: the same row versions
 * and WAL as a run at that pace, with no worker process and no bookkeeping of a run.
 */
function pacedTwin(url: string, rowsPerSecond: number, rangeRows: number): Writer {
  const stopping = new AbortController();
  let written = 0;
  let statementsRun = 0;
  let ended = false;
  let ranOut = false;
  const client = twinClient(url);
  const statements = (async () => {
    await client.connect();
    try {
      const { first, last } = await usersIdRange(client);
      const started = performance.now();
      for (let lo = first - 1; !stopping.signal.aborted; lo += rangeRows) {
        if (lo >= last) {
          ranOut = true;
          break;
        }
        written += (await client.query(twinStatement(lo, lo + rangeRows))).rowCount ?? 0;
        statementsRun++;
        const due = started + (written / rowsPerSecond) * 1000 - performance.now();
        // only the stop rejects the pause
        if (due > 0) await sleep(due, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    } finally {
      await client.end();
    }
  })();
  // a failure is thrown by stop(), not left unhandled meanwhile
  const outcome = statements
    .then(
      () => undefined,
      (error: unknown) => error,
    )
    .finally(() => {
      ended = true;
    });
  return {
    written: async () => written,
    slices: async () => ({ rows: written, slices: statementsRun }),
    ended: () => ended,
    async stop() {
      stopping.abort();
      const error = await outcome;
      if (error) throw error;
      return !ranOut;
    },
  };
}

/**
 * The database's own share of what a run costs the application: the twin beside the same
 * application at the pace the busy-primary run reached without I/O in this section, in
 * statements of that run's slices.
 */
async function twinCase(
  bench: Bench,
  cases: BesideCase[],
  rows: number,
  seconds: number,
  workDir: string,
): Promise<TwinCase> {
  const noIo = (profile: string) => cases.find((c) => c.profile === profile && c.delayMs === 0);
  const pace = noIo("busy primary")?.runRowsPerSecond ?? 0;
  if (!(pace > 0)) throw new Error("the busy-primary run wrote nothing in its window: no pace for the SQL twin");
  const sliceRows = noIo("busy primary")?.rowsPerSlice;
  const rangeRows = sliceRows ?? MAX_SLICE_ROWS;
  const figures = await alongside(bench, rows, seconds, workDir, async () => pacedTwin(bench.url, pace, rangeRows));
  const fullSpeed = noIo("full speed")?.runRowsPerSecond;
  return {
    paceRowsPerSecond: pace,
    rangeRows,
    rangeFrom: sliceRows === undefined ? "MAX_SLICE_ROWS" : "busy-primary slices",
    ...figures,
    ofFullSpeed: fullSpeed ? round(figures.runRowsPerSecond / fullSpeed, 2) : undefined,
  };
}

/**
 * The default settings with throttling on and off, alternated round by round on the same rows,
 * every signal healthy: no application, no standby, and autovacuum off on the table so that
 * it cannot start during a run (a vacuum of the table is a signal).
 */
async function throttleCost(bench: Bench, rows: number, rounds: number): Promise<ThrottleCost> {
  const rates = { on: [] as number[], off: [] as number[] };
  await bench.pool.query("ALTER TABLE users SET (autovacuum_enabled = off)");
  try {
    for (let r = 1; r <= rounds; r++) {
      for (const setting of ["on", "off"] as const) {
        await bench.freshUsers(rows);
        const ran = await bench.process(`throttle-${setting}-${r}`, { ...FROM_DEFAULTS, THROTTLE: setting });
        rates[setting].push(round(ran.rows / ran.seconds));
      }
    }
  } finally {
    await bench.pool.query("ALTER TABLE users RESET (autovacuum_enabled)");
  }
  const on = median(rates.on);
  const off = median(rates.off);
  return { rows, onRowsPerSecond: on, offRowsPerSecond: off, ratio: round(on / off, 3), rounds: rates };
}

export async function besideApp(bench: Bench, sizes: BesideAppSizes): Promise<BesideApp> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "beside-app-"));
  try {
    const cases: BesideCase[] = [];
    for (const profile of Object.keys(PROFILES)) {
      cases.push(await besideCase(bench, profile, 0, sizes.noIoRows, sizes.appSeconds, workDir));
      cases.push(await besideCase(bench, profile, sizes.ioDelayMs, sizes.ioRows, sizes.appSeconds, workDir));
    }
    const sqlTwin = await twinCase(bench, cases, sizes.noIoRows, sizes.appSeconds, workDir);
    const throttle = await throttleCost(bench, sizes.throttleRows, sizes.throttleRounds);
    return { app: { ...APP, seconds: sizes.appSeconds }, profiles: PROFILES, cases, sqlTwin, throttle };
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
