import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage } from "../cli/args";
import { runCommand } from "../cli/run-command";
import { UsageError } from "../src/base/command-error";
import { getConfig } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { printResult } from "../src/terminal/output";
import { atScale } from "./at-scale";
import { queryCost } from "./autoscaling-query";
import { type BesideAppSizes, besideApp } from "./beside-app";
import { Bench, mustSucceed, round } from "./harness";
import { type IoCase, ioBound, recordsInFlight } from "./io-bound";
import { peers } from "./peers";
import { processingRounds } from "./processing";
import { queueLatency } from "./queue-latency";
import { type RateLimitSizes, rateLimitCost } from "./rate-limit";
import { printReport, type Results } from "./report";
import { type ScaleOutOptions, scaleOut } from "./scale-out";
import { type ScheduleSizes, schedules } from "./schedules";
import { withScratchDatabase } from "./scratch-database";

/**
 * `npm run bench [-- --quick] [-- --only a,b]`: the system against its reference figures, on one
 * database, in one run (BENCHMARKS.md says how to read them, and holds the latest run). Sections:
 *
 *  - processing: without I/O, default settings, against ../shared/baselines/run.sh (one UPDATE
 *    `single`, the database's ceiling on the proof of concept's schema `limit`, its claim
 *    loop `seed`); import against psql \copy of the same files; generation (bench/processing.ts);
 *  - ceiling: the same run against the default job's SQL twin on our own schema
 *    (bench/ceiling.ts, bench/sql-twin/users.ts), interleaved with the processing rounds;
 *  - io-bound: one worker process at 20 ms and 2 ms of I/O per record, and at 20 ms on average
 *    with I/O's long tail (an exponential spread), against the records-in-flight bound,
 *    start-up, steady state and tail apart (bench/io-bound.ts);
 *  - scale-out: 1, 2 and 4 worker processes at 20 ms per record (bench/scale-out.ts);
 *  - peers: graphile-worker and pg-boss with one job per row, same rows, same work (bench/peers.ts);
 *  - latency: enqueue to first chunk with a worker waiting;
 *  - memory: peak RSS of generate, import and a worker at two sizes;
 *  - autoscaling: the autoscaling query at a large backlog, and its plan;
 *  - at-scale: generate, import into an empty table (against load-then-index, rounds as many as
 *    processing's, interleaved), plan and two worker processes at `--scale-rows` (the proof of
 *    concept's size: 50,000,000) (bench/at-scale.ts);
 *  - beside-app: an application of pgbench clients at a fixed rate, alone, beside a run and alone
 *    again, for each profile of settings, and beside the job's SQL twin at the busy-primary run's
 *    pace and slice size; throttling on against off (bench/beside-app.ts);
 *  - rate-limit: one worker process at 20 ms per record without a rate limit, under one far above
 *    what it does and under one near it (bench/rate-limit.ts);
 *  - schedules: a schedule every minute, ours against graphile-worker's crontab, with 1, 2 and 4
 *    worker processes over 3 ticks: runs per tick, transactions added, tick to start; every
 *    worker down across a tick; a `--once` pod after one (bench/schedules.ts). Some 10 minutes of
 *    wall clock; `--quick` starts the runners and reads their transactions, without a tick.
 */

export const SECTIONS = [
  "processing",
  "ceiling",
  "io-bound",
  "scale-out",
  "peers",
  "latency",
  "memory",
  "autoscaling",
  "at-scale",
  "beside-app",
  "rate-limit",
  "schedules",
] as const;
type Section = (typeof SECTIONS)[number];

const ORIGINAL_POD_ROWS_PER_SECOND = 4000;
/** Worker processes of the at-scale run: the two the proof of concept's 50,000,000-row figure used. */
const AT_SCALE_PROCESSES = 2;

interface Sizes {
  rows: number;
  repeat: number;
  io: IoCase[];
  scaleOut: ScaleOutOptions;
  peerRows: number;
  peerDelayMs: number;
  pgBossBatchSize: number;
  memoryRows: [small: number, large: number];
  backlogRows: number;
  scaleRows: number;
  besideApp: BesideAppSizes;
  rateLimit: RateLimitSizes;
  schedules: ScheduleSizes;
}

const FULL: Sizes = {
  rows: 1_000_000,
  repeat: 3,
  io: [
    { delayMs: 20, rows: 100_000, target: 0.9 },
    { delayMs: 2, rows: 200_000, target: 0.7 },
    // I/O's long tail: a record in a hundred waits 92 ms or more, and its slice cannot commit before
    { delayMs: 20, spread: "exponential", rows: 100_000 },
  ],
  // 50,000 rows per process in chunks of 2,500: 20 chunks per process, 5 per chunk slot
  scaleOut: { processes: [1, 2, 4], rowsPerProcess: 50_000, delayMs: 20, chunkSize: 2_500 },
  peerRows: 100_000,
  peerDelayMs: 2,
  pgBossBatchSize: 1_000,
  memoryRows: [500_000, 5_000_000],
  backlogRows: 10_000_000,
  scaleRows: 5_000_000,
  // the run without I/O outlasts the application's 10 s at full speed (about 150,000 rows/s)
  besideApp: {
    noIoRows: 3_000_000,
    ioRows: 200_000,
    ioDelayMs: 20,
    appSeconds: 10,
    throttleRows: 1_000_000,
    throttleRounds: 3,
  },
  // 100,000 rows at about 6,000 rows/s: some 17 s a run
  rateLimit: { rows: 100_000, delayMs: 20, rounds: 3, farAbove: 1_000_000, nearShare: 0.9 },
  // 1 and 2, then 4: some 36 connections at a time
  schedules: { phases: [[1, 2], [4]], ticks: 3, idleWindowSeconds: 0 },
};
const QUICK: Sizes = {
  rows: 20_000,
  repeat: 1,
  io: [
    { delayMs: 20, rows: 2_000, target: 0.9 },
    { delayMs: 2, rows: 5_000, target: 0.7 },
    { delayMs: 20, spread: "exponential", rows: 2_000 },
  ],
  scaleOut: { processes: [1, 2, 4], rowsPerProcess: 1_000, delayMs: 20, chunkSize: 250 },
  peerRows: 2_000,
  peerDelayMs: 2,
  pgBossBatchSize: 250,
  memoryRows: [5_000, 20_000],
  backlogRows: 50_000,
  scaleRows: 20_000,
  besideApp: { noIoRows: 20_000, ioRows: 2_000, ioDelayMs: 20, appSeconds: 1, throttleRows: 5_000, throttleRounds: 1 },
  rateLimit: { rows: 2_000, delayMs: 20, rounds: 1, farAbove: 1_000_000, nearShare: 0.9 },
  schedules: { phases: [[1]], ticks: 0, idleWindowSeconds: 5 },
};

function parseSections(only: string | undefined): Set<Section> {
  if (!only) return new Set(SECTIONS);
  const asked = only.split(",").map((s) => s.trim());
  const unknown = asked.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) throw new UsageError(`unknown section ${unknown.join(", ")}: one of ${SECTIONS.join(", ")}`);
  return new Set(asked as Section[]);
}

async function main(argv: string[]): Promise<void> {
  const args = await yargs(argv)
    .option("quick", { type: "boolean", default: false, describe: "small sizes, once each: checks that it runs" })
    .option("only", { type: "string", describe: `sections to run, comma-separated: ${SECTIONS.join(", ")}` })
    .option("scale-rows", { type: "number", describe: "rows of the at-scale section (50000000: a large table)" })
    .check((parsed) => {
      parseSections(parsed.only);
      return true;
    })
    .strict()
    .fail(failOnUsage)
    .parseAsync();
  const sizes = { ...(args.quick ? QUICK : FULL), ...(args.scaleRows ? { scaleRows: args.scaleRows } : {}) };
  const sections = parseSections(args.only);
  const config = getConfig();
  const logger = getLogger();
  const log = (line: string) => logger.info(line);
  await withScratchDatabase("bench", async ({ url, pool }) => {
    const dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), "bench-data-"));
    try {
      await measure(new Bench(url, pool, dataRoot), sizes, sections, config.workers, log);
    } finally {
      fs.rmSync(dataRoot, { recursive: true, force: true });
    }
  });
}

async function measure(
  bench: Bench,
  sizes: Sizes,
  sections: Set<Section>,
  workers: number,
  log: (line: string) => void,
): Promise<void> {
  const results: Results = { sectionSeconds: {}, loadAverage: {} };
  const timed = async <T>(section: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    results.loadAverage[section] = os.loadavg().map((l) => round(l, 2));
    try {
      return await fn();
    } finally {
      results.sectionSeconds[section] = round((performance.now() - started) / 1000, 1);
    }
  };
  mustSucceed("schema", await bench.seed(["schema"]));

  if (sections.has("processing") || sections.has("ceiling")) {
    log(`generating ${sizes.rows} rows`);
    const { dir, generate } = await bench.files(sizes.rows);
    results.generate = {
      rows: sizes.rows,
      seconds: round(generate?.seconds ?? 0, 2),
      rowsPerSecond: round(sizes.rows / (generate?.seconds ?? 1)),
    };
    const name = [sections.has("processing") && "processing", sections.has("ceiling") && "ceiling"]
      .filter(Boolean)
      .join("+");
    log(`${name}: ${sizes.repeat} rounds of ${sizes.rows} rows`);
    const rounds = await timed(name, () =>
      processingRounds(bench, dir, {
        rows: sizes.rows,
        repeat: sizes.repeat,
        workers,
        processing: sections.has("processing"),
        ceiling: sections.has("ceiling"),
      }),
    );
    Object.assign(results, JSON.parse(JSON.stringify(rounds)));
  }

  if (sections.has("io-bound")) {
    log(`io-bound: ${sizes.io.map((c) => `${c.rows} rows at ${c.delayMs} ms ${c.spread ?? "fixed"}`).join(", ")}`);
    const cases = await timed("io-bound", () => ioBound(bench, sizes.io, workers, sizes.repeat));
    const twoMs = cases.find((c) => c.delayMs === 2 && c.spread === "fixed") ?? cases[0];
    results.ioBound = {
      rows: twoMs?.rows ?? 0,
      rowsPerSecond: twoMs?.wallRowsPerSecond ?? 0,
      originalPod: ORIGINAL_POD_ROWS_PER_SECOND,
      cases,
    };
  }

  if (sections.has("scale-out")) {
    log(`scale-out: ${sizes.scaleOut.processes.join(", ")} processes`);
    results.scaleOut = {
      ...sizes.scaleOut,
      rows: await timed("scale-out", () => scaleOut(bench, sizes.scaleOut)),
    };
  }

  if (sections.has("peers")) {
    log(`peers: ${sizes.peerRows} rows at ${sizes.peerDelayMs} ms`);
    results.peers = await timed("peers", () =>
      peers(bench, {
        rows: sizes.peerRows,
        delayMs: sizes.peerDelayMs,
        concurrency: recordsInFlight(workers),
        pgBossWorkers: workers,
        pgBossBatchSize: sizes.pgBossBatchSize,
      }),
    );
  }

  if (sections.has("latency")) {
    log("queue latency: enqueue to first chunk with a worker waiting");
    results.queueLatencyMs = await timed("latency", () => queueLatency(bench));
  }

  if (sections.has("memory")) {
    results.peakRssMb = await timed("memory", async () => {
      const memory: Record<string, Record<string, number | undefined>> = {};
      for (const rows of sizes.memoryRows) {
        log(`memory at ${rows} rows`);
        const files = await bench.files(rows);
        await bench.reset();
        const imported = await bench.importFiles(files.dir, true);
        await bench.settle();
        const worked = await bench.process(`memory-${rows}`, {}, true);
        memory[rows] = { generate: files.generate?.peakRssMb, import: imported.peakRssMb, worker: worked.peakRssMb };
      }
      return memory;
    });
  }

  if (sections.has("autoscaling")) {
    log(`autoscaling query at ${sizes.backlogRows} pending rows`);
    results.autoscalingQuery = await timed("autoscaling", async () => {
      await bench.freshUsers(sizes.backlogRows);
      mustSucceed("enqueue", await bench.seed(["enqueue", "--batch-name", "backlog"]));
      return queryCost(bench.pool, sizes.backlogRows);
    });
  }

  if (sections.has("at-scale")) {
    log(`at scale: ${sizes.scaleRows} rows, ${AT_SCALE_PROCESSES} worker processes`);
    results.atScale = await timed("at-scale", () => atScale(bench, sizes.scaleRows, AT_SCALE_PROCESSES, sizes.repeat));
  }

  if (sections.has("beside-app")) {
    log("beside an application: pgbench at a fixed rate, alone and beside a run, per profile");
    results.besideApp = await timed("beside-app", () => besideApp(bench, sizes.besideApp));
  }

  if (sections.has("rate-limit")) {
    log("rate limit: none, far above the worker's pace, near it");
    results.rateLimit = await timed("rate-limit", () => rateLimitCost(bench, sizes.rateLimit));
  }

  if (sections.has("schedules")) {
    log(`schedules: ours against graphile-worker's crontab, ${sizes.schedules.phases.flat().join(", ")} processes`);
    results.schedules = await timed("schedules", () => schedules(bench, sizes.schedules));
  }

  printReport(results);
  printResult(results);
}

runCommand("bench", () => main(hideBin(process.argv)));
