import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { getLogger } from "../src/config/context";
import { migrate } from "../src/db/migrate";
import { type Bench, DIST, exec, median, mustSucceed, type Ran, round, WORKER_CLI } from "./harness";
import { type ScratchDatabase, withDatabasesBeside } from "./scratch-database";
import { insertSyntheticUsers } from "./synthetic-users";

/**
 * A schedule every minute kept two ways, with real worker processes (`graphile-worker` with our
 * preset, WORKERS=1), each case in a database of its own, all side by side over the same ticks:
 *
 *  - ours: a job declaring the schedule (workflows/schedule-tick.ts); a tick's run is named
 *    JOB@TICK, and a pending row is added before each tick so that it has one to start;
 *  - crontab: graphile-worker's crontab (`--crontab`, its `known_crontabs`) running a task that
 *    records the tick of its payload (`_cron.ts`) and its own start;
 *  - baseline: the same runners with neither, for the transactions the others add.
 *
 * For 1, 2 and 4 processes: runs per tick, transactions committed in the window (ticks x 1
 * minute, from half a minute before the first tick; `pg_stat_database.xact_commit` of the case's
 * database) against the baseline's, and tick to start. Beside them: every worker stopped before
 * a tick and started again after it (ours, the crontab without and with a backfill), and a
 * `--once` pod started after a tick with no runner up (what KEDA runs). Rows are added to every
 * database alike, so that they cancel out of the transactions. With no tick (`--quick`), the
 * window is a few seconds of runners up, and neither outage nor `--once` pod is tried.
 */

const CRON = "* * * * *";
const JOB = "minutely";
const TASK = "bench_cron_tick";
const MINUTE = 60_000;
/** The crontab's backfill in its outage case: ours decides a tick up to 5 minutes late as on time. */
const FILL = "5m";
/** From every runner up to the first tick, at least. */
const WARM_UP_MS = 30_000;
const READY_TIMEOUT_MS = 180_000;
/** A pending row is added this long before each tick, for ours' tick to have a run to start. */
const FEED_BEFORE_TICK_MS = 20_000;
/** The outage: every worker stopped this long before the tick, started again this long after it. */
const DOWN_BEFORE_TICK_MS = 15_000;
const BACK_AFTER_TICK_MS = 30_000;
/** The `--once` pod starts this long after the tick. */
const ONCE_AFTER_TICK_MS = 10_000;

export interface ScheduleSizes {
  /** The processes of each case, a phase after another (the first with the outage and the `--once` pods). */
  phases: number[][];
  /** Ticks in the window; with none, a window of `idleWindowSeconds`, and no outage or `--once` pod. */
  ticks: number;
  idleWindowSeconds: number;
}

type Approach = "baseline" | "ours" | "crontab";

export interface ScheduleCase {
  approach: "ours" | "crontab";
  processes: number;
  ticks: string[];
  /** Ours: runs named JOB@TICK; crontab: executions of its task for the tick. */
  runsPerTick: number[];
  /** Of ticks before the window (its runners were up before it opened). */
  runsBeforeWindow: number;
  commitsPerMinute: number;
  baselineCommitsPerMinute: number;
  addedPerMinute: number;
  addedPerTick: number | null;
  tickToStartMs: number[];
}

export interface ScheduleOutcome {
  case: string;
  /** What started for each tick: how many, the first how long after the tick, backfilled or not. */
  ticks: { tick: string; runs: number; startedAfterS: number | null; backfilled: boolean }[];
}

export interface Schedules {
  cron: string;
  ticksPerCase: number;
  windowSeconds: number;
  cases: ScheduleCase[];
  tickToStart: Record<"ours" | "crontab", { medianMs: number; maxMs: number } | null>;
  /** Every worker down across `tick`: stopped at `downAt`, started again at `backAt`. */
  outage?: { tick: string; downAt: string; backAt: string; cases: ScheduleOutcome[] };
  /** A `--once` pod started after `tick`, no runner up; what it found due first. */
  once?: {
    tick: string;
    cases: (ScheduleOutcome & { backlogChunks: number; queuedJobs: number; podSeconds: number })[];
  };
}

interface Files {
  root: string;
  scheduledJobs: string;
  plainJobs: string;
  tasks: string;
  crontab: string;
  crontabWithFill: string;
}

interface Runner {
  ran: Promise<Ran>;
  stop: () => Promise<Ran>;
  stopped: boolean;
  exited?: Ran;
}

interface CaseSpec {
  label: string;
  approach: Approach;
  processes: number;
  crontab?: string;
}

interface Case extends CaseSpec {
  db: ScratchDatabase;
  runners: Runner[];
}

interface Start {
  tick: number;
  startedAt: number;
  backfilled: boolean;
}

/**
 * The source of a job file over the users table whose function does nothing, with `schedule` (an
 * object's source) or none; its state columns are the users job's.
 */
export const usersJobSource = (
  name: string,
  schedule?: string,
) => `const { defineJob } = require(${JSON.stringify(path.join(DIST, "src/index.js"))});
const users = require(${JSON.stringify(path.join(DIST, "jobs/users.js"))}).default;
module.exports = defineJob({
  name: "${name}",
  table: "users",
  key: "id",
  reads: {},
  state: users.state,
  ${schedule ? `schedule: ${schedule},` : ""}
  async process() {},
});
`;

const TASK_SOURCE = `// the crontab's task of bench/schedules.ts: records the tick it runs for, and when it started
module.exports = async (payload, helpers) => {
  await helpers.query("INSERT INTO bench_cron_ticks (tick, backfilled, pod) VALUES ($1, $2, $3)", [
    payload._cron.ts,
    payload._cron.backfilled,
    process.env.POD_NAME,
  ]);
};
`;

/** The jobs (with and without the schedule), the task directory (ours and the crontab's task), the crontabs. */
function writeFiles(): Files {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bench-schedules-"));
  const dir = (name: string) => {
    const made = path.join(root, name);
    fs.mkdirSync(made);
    return made;
  };
  const files = {
    root,
    scheduledJobs: dir("scheduled"),
    plainJobs: dir("plain"),
    tasks: dir("tasks"),
    crontab: path.join(root, "crontab"),
    crontabWithFill: path.join(root, "crontab-fill"),
  };
  fs.writeFileSync(path.join(files.scheduledJobs, `${JOB}.js`), usersJobSource(JOB, `{ cron: "${CRON}" }`));
  fs.writeFileSync(path.join(files.plainJobs, `${JOB}.js`), usersJobSource(JOB));
  const ourTasks = path.join(DIST, "tasks");
  for (const task of fs.readdirSync(ourTasks).filter((name) => name.endsWith(".js"))) {
    fs.symlinkSync(path.join(ourTasks, task), path.join(files.tasks, task));
  }
  fs.writeFileSync(path.join(files.tasks, `${TASK}.js`), TASK_SOURCE);
  fs.writeFileSync(files.crontab, `${CRON} ${TASK}\n`);
  fs.writeFileSync(files.crontabWithFill, `${CRON} ${TASK} ?fill=${FILL}\n`);
  return files;
}

async function prepare(db: ScratchDatabase): Promise<void> {
  await migrate(db.pool, getLogger());
  await db.pool.query(`CREATE TABLE bench_cron_ticks (
    tick TIMESTAMPTZ NOT NULL, backfilled BOOLEAN NOT NULL, pod TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`);
  await insertSyntheticUsers(db.pool, 1);
}

function workerArgs(c: CaseSpec, once: boolean): string[] {
  const config = c.approach === "crontab" ? "bench/crontab-worker.config.js" : ".graphile-worker.config.js";
  return [
    WORKER_CLI,
    "-C",
    path.join(DIST, config),
    ...(c.crontab ? ["--crontab", c.crontab] : []),
    ...(once ? ["--once"] : []),
  ];
}

function startRunner(bench: Bench, files: Files, c: Case, once = false): Runner {
  const stop = new AbortController();
  const env = {
    ...bench.env,
    DATABASE_URL: c.db.url,
    JOBS_DIR: c.approach === "ours" ? files.scheduledJobs : files.plainJobs,
    BENCH_TASK_DIRECTORY: files.tasks,
    WORKERS: "1",
    POD_NAME: `${c.label}-${c.runners.length + 1}`,
  };
  const ran = exec(process.execPath, workerArgs(c, once), env, false, stop.signal);
  const runner: Runner = {
    ran,
    stopped: false,
    stop: () => {
      runner.stopped = true;
      stop.abort();
      return ran;
    },
  };
  void ran.then((exited) => {
    runner.exited = exited;
  });
  c.runners.push(runner);
  return runner;
}

/** Throws with its output when a runner of `cases` ended before it was stopped. */
function mustBeRunning(cases: Case[]): void {
  for (const c of cases) {
    const ended = c.runners.find((r) => r.exited && !r.stopped);
    if (ended?.exited)
      throw new Error(`${c.label}: a worker ended (exit ${ended.exited.code}):\n${ended.exited.stderr}`);
  }
}

async function waitForRunners(cases: Case[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const c of cases) {
    for (;;) {
      mustBeRunning(cases);
      const { rows } = await c.db.pool.query("SELECT count(DISTINCT pod)::int AS n FROM worker_sessions");
      if (rows[0].n >= c.runners.length) break;
      if (Date.now() > deadline) throw new Error(`${c.label}: ${rows[0].n} of ${c.runners.length} workers up`);
      await sleep(500);
    }
  }
}

/** Transactions committed so far in each database, read from the bench's own. */
async function commits(bench: Bench, cases: Case[]): Promise<number[]> {
  const { rows } = await bench.pool.query<{ datname: string; xact_commit: string }>(
    "SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1)",
    [cases.map((c) => c.db.name)],
  );
  return cases.map((c) => Number(rows.find((row) => row.datname === c.db.name)?.xact_commit));
}

/** What the case's ticks started: ours' runs by their names, the crontab task's records. */
async function starts(c: Case): Promise<Start[]> {
  if (c.approach === "crontab") {
    const { rows } = await c.db.pool.query(
      `SELECT extract(epoch FROM tick) * 1000 AS tick, extract(epoch FROM started_at) * 1000 AS started, backfilled
         FROM bench_cron_ticks`,
    );
    return rows.map((row) => ({ tick: Number(row.tick), startedAt: Number(row.started), backfilled: row.backfilled }));
  }
  // started_at is a TIMESTAMP, in the server's zone
  const { rows } = await c.db.pool.query(
    "SELECT batch_name, extract(epoch FROM started_at::timestamptz) * 1000 AS started FROM batch_jobs WHERE job = $1",
    [JOB],
  );
  return rows.map((row) => ({
    tick: Date.parse(String(row.batch_name).slice(JOB.length + 1)),
    startedAt: Number(row.started),
    backfilled: false,
  }));
}

async function outcome(c: Case, ticks: number[]): Promise<ScheduleOutcome> {
  const started = await starts(c);
  return {
    case: c.label,
    ticks: ticks.map((tick) => {
      const ofTick = started.filter((s) => s.tick === tick).sort((a, b) => a.startedAt - b.startedAt);
      const first = ofTick[0];
      return {
        tick: new Date(tick).toISOString(),
        runs: ofTick.length,
        startedAfterS: first ? round((first.startedAt - tick) / 1000, 1) : null,
        backfilled: ofTick.some((s) => s.backfilled),
      };
    }),
  };
}

const spread = (values: number[]) =>
  values.length > 0 ? { medianMs: round(median(values)), maxMs: round(Math.max(...values)) } : null;

/** Sleeps until `time` (Date.now()), then does `what`. */
const at = <T>(time: number, what: () => Promise<T>): Promise<T> => sleep(Math.max(0, time - Date.now())).then(what);

export async function schedules(bench: Bench, sizes: ScheduleSizes): Promise<Schedules> {
  const files = writeFiles();
  try {
    const phases: Phase[] = [];
    for (const [i, processes] of sizes.phases.entries()) {
      phases.push(await phase(bench, files, sizes, processes, i === 0 && sizes.ticks > 0));
    }
    const cases = phases.flatMap((p) => p.cases);
    const delays = (approach: string) => cases.filter((c) => c.approach === approach).flatMap((c) => c.tickToStartMs);
    return {
      cron: CRON,
      ticksPerCase: sizes.ticks,
      windowSeconds: phases[0]?.windowSeconds ?? 0,
      cases,
      tickToStart: { ours: spread(delays("ours")), crontab: spread(delays("crontab")) },
      ...phases[0]?.asides,
    };
  } finally {
    fs.rmSync(files.root, { recursive: true, force: true });
  }
}

interface Phase {
  cases: ScheduleCase[];
  windowSeconds: number;
  asides: Pick<Schedules, "outage" | "once">;
}

/**
 * The cases of `processes` side by side (and, `withAsides`, the outage and the `--once` pods):
 * phases keep the worker processes up at once, three connections each, within the server's
 * connections.
 */
async function phase(
  bench: Bench,
  files: Files,
  sizes: ScheduleSizes,
  processes: number[],
  withAsides: boolean,
): Promise<Phase> {
  const measured: CaseSpec[] = processes.flatMap((n) =>
    (["baseline", "ours", "crontab"] as const).map((approach) => ({
      label: `${approach}-${n}`,
      approach,
      processes: n,
      crontab: approach === "crontab" ? files.crontab : undefined,
    })),
  );
  const outages: CaseSpec[] = withAsides
    ? [
        { label: "ours-catch-up-latest", approach: "ours", processes: 1 },
        { label: "crontab-no-backfill", approach: "crontab", processes: 1, crontab: files.crontab },
        { label: `crontab-fill-${FILL}`, approach: "crontab", processes: 1, crontab: files.crontabWithFill },
      ]
    : [];
  const onces: CaseSpec[] = withAsides
    ? [
        { label: "ours-once", approach: "ours", processes: 0 },
        { label: "crontab-once", approach: "crontab", processes: 0, crontab: files.crontab },
      ]
    : [];
  const specs = [...measured, ...outages, ...onces];
  return withDatabasesBeside(
    bench,
    specs.map((s) => `sched_${s.label.replace(/\W/g, "_")}`),
    2,
    async (dbs) => {
      const cases: Case[] = specs.map((spec, i) => ({ ...spec, db: dbs[i] as ScratchDatabase, runners: [] }));
      await Promise.all(cases.map((c) => prepare(c.db)));
      const [measuredCases, outageCases, onceCases] = [
        cases.slice(0, measured.length),
        cases.slice(measured.length, measured.length + outages.length),
        cases.slice(measured.length + outages.length),
      ];
      // the --once pod's schedule, written as a deploy writes it: by `seed schema`, no worker up
      for (const c of onceCases.filter((o) => o.approach === "ours")) {
        mustSucceed(
          "seed schema",
          await bench.seed(["schema"], { DATABASE_URL: c.db.url, JOBS_DIR: files.scheduledJobs }),
        );
      }
      try {
        return await measure(bench, files, sizes, measuredCases, outageCases, onceCases);
      } finally {
        await Promise.all(cases.flatMap((c) => c.runners.map((r) => r.stop())));
      }
    },
  );
}

async function measure(
  bench: Bench,
  files: Files,
  sizes: ScheduleSizes,
  measuredCases: Case[],
  outageCases: Case[],
  onceCases: Case[],
): Promise<Phase> {
  const running = [...measuredCases, ...outageCases];
  for (const c of running) for (let i = 0; i < c.processes; i++) startRunner(bench, files, c);
  await waitForRunners(running);
  const ready = Date.now();
  const first = Math.ceil((ready + WARM_UP_MS) / MINUTE) * MINUTE;
  const ticks = Array.from({ length: sizes.ticks }, (_, k) => first + k * MINUTE);
  const opens = sizes.ticks > 0 ? first - MINUTE / 2 : ready + 1000;
  const closes = opens + (sizes.ticks > 0 ? sizes.ticks * MINUTE : sizes.idleWindowSeconds * 1000);

  const outageTick = ticks[1];
  const onceTick = ticks[0];
  const feeds = ticks.map((tick, k) =>
    at(tick - FEED_BEFORE_TICK_MS, () => Promise.all(running.map((c) => insertSyntheticUsers(c.db.pool, 1, k + 2)))),
  );
  const outage =
    outageTick === undefined
      ? []
      : [
          at(outageTick - DOWN_BEFORE_TICK_MS, () =>
            Promise.all(outageCases.flatMap((c) => c.runners.map((r) => r.stop()))),
          ),
          at(outageTick + BACK_AFTER_TICK_MS, async () => {
            for (const c of outageCases) startRunner(bench, files, c);
          }),
        ];
  const [before, after, onceResults] = await Promise.all([
    at(opens, () => commits(bench, measuredCases)),
    at(closes, () => commits(bench, measuredCases)),
    onceTick === undefined
      ? undefined
      : at(onceTick + ONCE_AFTER_TICK_MS, () => runOnce(bench, files, onceCases, onceTick)),
    Promise.all<unknown>([...feeds, ...outage]),
  ]);
  mustBeRunning(running);

  const windowMinutes = (closes - opens) / MINUTE;
  const results: ScheduleCase[] = [];
  for (const [i, c] of measuredCases.entries()) {
    if (c.approach === "baseline") continue;
    const baseline = measuredCases.findIndex((b) => b.approach === "baseline" && b.processes === c.processes);
    const perMinute = (k: number) => ((after[k] as number) - (before[k] as number)) / windowMinutes;
    const added = perMinute(i) - perMinute(baseline);
    const started = await starts(c);
    results.push({
      approach: c.approach,
      processes: c.processes,
      ticks: ticks.map((tick) => new Date(tick).toISOString()),
      runsPerTick: ticks.map((tick) => started.filter((s) => s.tick === tick).length),
      runsBeforeWindow: started.filter((s) => s.tick < opens).length,
      commitsPerMinute: round(perMinute(i), 1),
      baselineCommitsPerMinute: round(perMinute(baseline), 1),
      addedPerMinute: round(added, 1),
      // a tick a minute
      addedPerTick: ticks.length > 0 ? round(added, 1) : null,
      tickToStartMs: started.filter((s) => ticks.includes(s.tick)).map((s) => round(s.startedAt - s.tick)),
    });
  }
  return {
    windowSeconds: round((closes - opens) / 1000),
    cases: results,
    asides: {
      ...(outageTick !== undefined && {
        outage: {
          tick: new Date(outageTick).toISOString(),
          downAt: new Date(outageTick - DOWN_BEFORE_TICK_MS).toISOString(),
          backAt: new Date(outageTick + BACK_AFTER_TICK_MS).toISOString(),
          cases: await Promise.all(outageCases.map((c) => outcome(c, ticks))),
        },
      }),
      ...(onceTick !== undefined &&
        onceResults && { once: { tick: new Date(onceTick).toISOString(), cases: onceResults } }),
    },
  };
}

/** A `--once` pod in each case, no runner up, after `tick`: what was due before it, and what it started. */
async function runOnce(bench: Bench, files: Files, cases: Case[], tick: number) {
  return Promise.all(
    cases.map(async (c) => {
      const { rows } = await c.db.pool.query(
        `SELECT (SELECT chunks_left FROM batch_backlog)::int AS backlog,
                (SELECT count(*) FROM graphile_worker.jobs)::int AS queued`,
      );
      const ran = mustSucceed(`${c.label}: --once pod`, await startRunner(bench, files, c, true).ran);
      return {
        ...(await outcome(c, [tick])),
        backlogChunks: rows[0].backlog,
        queuedJobs: rows[0].queued,
        podSeconds: round(ran.seconds, 1),
      };
    }),
  );
}
