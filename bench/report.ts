import { table } from "../src/terminal/output";
import type { AtScale } from "./at-scale";
import type { queryCost } from "./autoscaling-query";
import type { BesideApp, BesideFigures } from "./beside-app";
import type { IoResult } from "./io-bound";
import type { peers } from "./peers";
import type { processingRounds } from "./processing";
import type { RateLimitCost } from "./rate-limit";
import type { ScaleOutOptions, ScaleOutRow } from "./scale-out";
import type { ScheduleOutcome, Schedules } from "./schedules";

type Rounds = Awaited<ReturnType<typeof processingRounds>>;

/** The figures of the sections that ran (the JSON line `npm run bench` ends with). */
export interface Results {
  sectionSeconds: Record<string, number>;
  /** os.loadavg() (1, 5, 15 minutes) as each section began: the machine may be shared. */
  loadAverage: Record<string, number[]>;
  generate?: { rows: number; seconds: number; rowsPerSecond: number };
  processing?: NonNullable<Rounds["processing"]>;
  import?: NonNullable<Rounds["import"]>;
  ceiling?: NonNullable<Rounds["ceiling"]>;
  ioBound?: { rows: number; rowsPerSecond: number; originalPod: number; cases: IoResult[] };
  scaleOut?: ScaleOutOptions & { rows: ScaleOutRow[] };
  peers?: Awaited<ReturnType<typeof peers>>;
  queueLatencyMs?: number;
  peakRssMb?: Record<string, Record<string, number | undefined>>;
  autoscalingQuery?: Awaited<ReturnType<typeof queryCost>>;
  atScale?: AtScale;
  besideApp?: BesideApp;
  rateLimit?: RateLimitCost;
  schedules?: Schedules;
}

const ratio = (ours: number, reference: number | undefined) =>
  reference ? `${Math.round((ours / reference) * 100) / 100}x` : "n/a";

/**
 * The application beside a writer (`who`: a run, or the SQL twin): its latencies against alone
 * (the two alone windows pooled, and each), the same from the transactions' own start, the
 * checkpoints in each window, then its waits on the writer's locks and the writer's rate, with
 * the targets of each.
 */
function besideRows(
  title: string,
  who: string,
  k: BesideFigures,
  targets: { p99: string; waitsAndRate: string; pace?: string; ofFull?: string },
): string[][] {
  const slices = k.rowsPerSlice === undefined ? "" : `, ${k.rowsPerSlice} rows a slice`;
  return [
    [
      `${title}: app p50 / p99 / slowest (ms)`,
      `${k.beside.p50Ms} / ${k.beside.p99Ms} / ${k.beside.maxMs}`,
      `alone ${k.alone.p50Ms} / ${k.alone.p99Ms} / ${k.alone.maxMs} (p99 before ${k.aloneBefore.p99Ms}, after ${k.aloneAfter.p99Ms})`,
      `p99 ${k.p99Ratio}x`,
      targets.p99,
    ],
    [
      "  app p99 from its own start (ms); checkpoints in the window",
      `${k.beside.p99FromStartMs}; ${k.beside.checkpoints}`,
      `alone ${k.alone.p99FromStartMs}; before ${k.aloneBefore.checkpoints}, after ${k.aloneAfter.checkpoints}`,
      `${k.p99FromStartRatio}x`,
      "",
    ],
    [
      `  app waits on the ${who}'s locks: count, longest (ms); ${who} (rows/s)`,
      `${k.beside.lockWaits}, ${k.beside.longestLockWaitMs}; ${k.runRowsPerSecond}`,
      `${targets.pace ?? ""}${k.rows} rows${slices}${k.covered ? "" : ", ended inside the window"}`,
      targets.ofFull ?? "",
      targets.waitsAndRate,
    ],
  ];
}

export function printReport(results: Results): void {
  const rows: string[][] = [];
  const p = results.processing;
  const c = results.ceiling;
  if (c) {
    rows.push([
      "processing, no I/O (rows/s)",
      String(c.ours),
      `SQL twin, our schema ${c.rowsPerSecond}`,
      ratio(c.ours, c.rowsPerSecond),
      `>= ${c.target}x${c.twinMatchesJob === false ? " (twin differs!)" : ""}`,
    ]);
  }
  if (p) {
    const refs = p.references;
    rows.push(
      [
        c ? "" : "processing, no I/O (rows/s)",
        c ? "" : String(p.rowsPerSecond),
        `limit ${refs.limit ?? "n/a"}`,
        ratio(p.rowsPerSecond, refs.limit),
        ">= 1.0x",
      ],
      ["", "", `seed ${refs.seed ?? "n/a"}`, ratio(p.rowsPerSecond, refs.seed), ">= 3.5x"],
      ["", "", `single ${refs.single ?? "n/a"}`, ratio(p.rowsPerSecond, refs.single), ""],
    );
  }
  const io = results.ioBound;
  if (io) {
    for (const k of io.cases) {
      rows.push(
        [
          `I/O ${k.delayMs} ms${k.spread === "fixed" ? "" : ` (${k.spread})`}, 1 process, ${k.rows} rows: steady (rows/s)`,
          String(k.steadyRowsPerSecond),
          `${k.recordsInFlight} in flight: ${k.bound}`,
          `${k.steadyRatio}x`,
          "",
        ],
        [
          `  whole run, spawn to exit (rows/s), median of ${k.roundWallRatios.length}`,
          String(k.wallRowsPerSecond),
          `start-up ${k.startupSeconds} s, tail ${k.tailSeconds} s; rounds ${k.roundWallRatios.join(" / ")}`,
          `${k.wallRatio}x`,
          k.target === undefined ? "" : `>= ${k.target}x`,
        ],
      );
    }
    rows.push([
      "I/O 2 ms, 1 process (rows/s)",
      String(io.rowsPerSecond),
      `proof of concept's pod ${io.originalPod}`,
      ratio(io.rowsPerSecond, io.originalPod),
      ">= 5x",
    ]);
  }
  const s = results.scaleOut;
  if (s) {
    for (const r of s.rows) {
      rows.push([
        `scale-out ${r.processes} process(es), ${s.delayMs} ms, ${r.rows} rows: wall / steady`,
        `${r.wallRowsPerSecond} / ${r.steadyRowsPerSecond}`,
        `${r.processes} x one process`,
        `${r.wallScaling}x / ${r.steadyScaling}x`,
        r.processes > 1 ? ">= 0.9x" : "",
      ]);
    }
  }
  const peers = results.peers;
  if (peers) {
    rows.push(
      [
        `${peers.ours.rows} rows, ${peers.delayMs} ms each: ours (rows/s)`,
        String(peers.ours.rowsPerSecond),
        `graphile-worker, job per row ${peers.graphileWorker.rowsPerSecond}`,
        `${peers.graphileWorker.oursRatio}x`,
        "",
      ],
      ["", "", `pg-boss, job per row ${peers.pgBoss.rowsPerSecond}`, `${peers.pgBoss.oursRatio}x`, ""],
    );
  }
  const imp = results.import;
  if (imp) {
    rows.push([
      "import (s)",
      String(imp.seconds),
      `psql \\copy ${imp.psqlCopySeconds}`,
      ratio(imp.psqlCopySeconds, imp.seconds),
      ">= 1.0x",
    ]);
  }
  if (results.generate) rows.push(["generate (rows/s)", String(results.generate.rowsPerSecond), "", "", ""]);
  if (results.queueLatencyMs !== undefined) {
    rows.push(["enqueue to first chunk (ms)", String(results.queueLatencyMs), "", "", ""]);
  }
  if (p) rows.push(["worker time inside chunks", `${Math.round(p.timeInChunks * 1000) / 10}%`, "", "", ""]);
  const a = results.autoscalingQuery;
  if (a) {
    rows.push([
      "autoscaling query (ms)",
      String(a.medianMs),
      `count of the table ${a.originalQueryMs}`,
      "",
      `at ${a.pendingRows} pending`,
    ]);
  }
  for (const [size, m] of Object.entries(results.peakRssMb ?? {})) {
    rows.push([
      `peak RSS MB at ${size} rows`,
      `gen ${m.generate ?? "-"} / imp ${m.import} / wrk ${m.worker}`,
      "",
      "",
      "< 256, flat",
    ]);
  }
  const at = results.atScale;
  if (at) {
    rows.push(
      [
        `${at.rows} rows: import into an empty table (s, median of ${at.import.rounds.length})`,
        String(at.import.seconds),
        `load, then index ${at.import.loadThenIndexSeconds}`,
        `${at.import.ratio}x`,
        "<= 1.3x",
      ],
      [
        "  plan them: seed enqueue (s)",
        String(at.enqueue.seconds),
        `${at.enqueue.chunks} chunks, ${at.enqueue.plannedRows} rows planned, ${at.enqueue.finalTotal} at the end`,
        "",
        "< 5 s",
      ],
      [
        `  process them, ${at.processing.processes} processes (rows/s)`,
        String(at.processing.rowsPerSecond),
        `${at.processing.seconds} s, HOT updates ${Math.round(at.processing.hotShare * 1000) / 10}%`,
        "",
        "",
      ],
      [
        "  peak RSS MB: generate / import / workers",
        `${at.generate.peakRssMb ?? "-"} / ${at.import.peakRssMb ?? "-"} / ${at.processing.peakRssMb.join(", ")}`,
        `generate ${at.generate.seconds} s`,
        "",
        "< 256",
      ],
    );
  }
  const b = results.besideApp;
  if (b) {
    for (const k of b.cases) {
      rows.push(
        ...besideRows(`beside an app, ${k.profile}, ${k.delayMs} ms I/O`, "run", k, {
          p99: k.profile === "busy primary" ? "p99 <= 2x" : k.profile === "defaults" ? "p99 <= 5x" : "",
          waitsAndRate: k.profile === "defaults" ? "wait <= bound + 100 ms" : "",
        }),
      );
    }
    const w = b.sqlTwin;
    rows.push(
      ...besideRows("SQL twin at the busy-primary pace, no I/O", "twin", w, {
        p99: "p99 <= 2x",
        pace: `pace ${w.paceRowsPerSecond}, ${w.rangeRows} ids a statement (${w.rangeFrom}), `,
        ofFull: w.ofFullSpeed === undefined ? "" : `${Math.round(w.ofFullSpeed * 100)}% of full`,
        waitsAndRate: ">= 30% of full",
      }),
    );
    const t = b.throttle;
    rows.push([
      `throttling on, signals healthy, ${t.rows} rows (rows/s)`,
      String(t.onRowsPerSecond),
      `off ${t.offRowsPerSecond}`,
      `${t.ratio}x`,
      ">= 0.98x",
    ]);
  }
  const l = results.rateLimit;
  if (l) {
    rows.push(
      [
        `rate limit ${l.farAbove.perSecond}/s, ${l.delayMs} ms I/O, ${l.rows} rows (rows/s)`,
        String(l.farAbove.rowsPerSecond),
        `no limit ${l.unlimited}`,
        `${l.farAbove.ratio}x`,
        "",
      ],
      [
        `rate limit ${l.near.perSecond}/s, near the worker's pace (rows/s)`,
        String(l.near.rowsPerSecond),
        `the limit ${l.near.perSecond}`,
        `${l.near.ofLimit}x`,
        "<= 1.0x",
      ],
    );
  }
  if (results.schedules) rows.push(...scheduleRows(results.schedules));
  const times = Object.entries(results.sectionSeconds)
    .map(([section, seconds]) => `${section} ${seconds} s (load ${results.loadAverage[section]?.join(" ")})`)
    .join(", ");
  process.stderr.write(`\n${table(["measure", "ours", "reference", "ratio", "target"], rows)}\n\n${times}\n\n`);
}

/** What a case's ticks started: the runs of each tick, and when the first started. */
const started = (o: ScheduleOutcome | undefined) =>
  o?.ticks
    .map(
      (t) =>
        `${t.runs}${t.startedAfterS === null ? "" : ` at +${t.startedAfterS} s${t.backfilled ? " (backfill)" : ""}`}`,
    )
    .join(", ") ?? "n/a";

function scheduleRows(s: Schedules): string[][] {
  const rows: string[][] = [];
  const delay = (d: { medianMs: number; maxMs: number } | null) => (d ? `${d.medianMs} / ${d.maxMs}` : "-");
  for (const ours of s.cases.filter((c) => c.approach === "ours")) {
    const crontab = s.cases.find((c) => c.approach === "crontab" && c.processes === ours.processes);
    rows.push(
      [
        `"${s.cron}", ${ours.processes} process(es), ${s.ticksPerCase} ticks: runs per tick`,
        ours.runsPerTick.join(" ") || "-",
        `crontab ${crontab?.runsPerTick.join(" ") || "-"}`,
        "",
        "1 each",
      ],
      [
        "  transactions added per minute (per tick)",
        `${ours.addedPerMinute} (${ours.addedPerTick ?? "-"})`,
        `crontab ${crontab?.addedPerMinute} (${crontab?.addedPerTick ?? "-"}); none ${ours.baselineCommitsPerMinute}/min`,
        "",
        "",
      ],
    );
  }
  rows.push([
    "schedule: tick to start, median / max (ms)",
    delay(s.tickToStart.ours),
    `crontab ${delay(s.tickToStart.crontab)}`,
    "",
    "",
  ]);
  if (s.outage) {
    const [ours, ...crontabs] = s.outage.cases;
    rows.push(["every worker down across a tick, back 30 s after: started per tick", started(ours), "", "", ""]);
    for (const c of crontabs) rows.push(["", "", `${c.case} ${started(c)}`, "", ""]);
  }
  if (s.once) {
    const [ours, crontab] = s.once.cases;
    rows.push([
      "a --once pod after a tick, none up: started (backlog first)",
      `${started(ours)} (${ours?.backlogChunks})`,
      `crontab ${started(crontab)} (${crontab?.queuedJobs} queued)`,
      "",
      "",
    ]);
  }
  return rows;
}
