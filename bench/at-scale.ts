import { type Bench, mustSucceed, round } from "./harness";
import { type ImportRound, importIntoEmpty } from "./import-empty";

/**
 * A whole run at a size a user brings (the proof of concept's is 50,000,000 rows: `--scale-rows`),
 * as they would run it: generate the files, import them into an empty table (against loading the
 * same files with the indexes built after, bench/import-empty.ts), plan the run (`seed enqueue`,
 * the whole command), then `processes` worker processes draining it. Reports each step's time,
 * the share of the run's row writes that were HOT updates, and each process's peak RSS.
 */

export interface AtScale {
  rows: number;
  generate: { seconds: number; peakRssMb?: number };
  /** Medians of `importRounds` rounds, the reference and the import interleaved; each round's figures. */
  import: { seconds: number; loadThenIndexSeconds: number; ratio: number; rounds: ImportRound[]; peakRssMb?: number };
  /** plannedRows: the plan's count, or its estimate (a sampled plan); finalTotal: the run's total once it ended. */
  enqueue: { seconds: number; chunks: number; plannedRows: number; finalTotal: number };
  processing: { processes: number; seconds: number; rowsPerSecond: number; hotShare: number; peakRssMb: number[] };
}

export async function atScale(bench: Bench, rows: number, processes: number, importRounds: number): Promise<AtScale> {
  const { dir, generate } = await bench.files(rows);
  const imported = await importIntoEmpty(bench, dir, importRounds);
  await bench.settle();

  const name = `at-scale-${rows}`;
  const enqueued = mustSucceed("enqueue", await bench.seed(["enqueue", "--batch-name", name]));
  const planned = JSON.parse(enqueued.stdout) as { rows: number; chunks: number };

  await bench.pool.query("SELECT pg_stat_reset_single_table_counters('users'::regclass)");
  const started = performance.now();
  const ran = await Promise.all(Array.from({ length: processes }, () => bench.worker({}, true)));
  const seconds = (performance.now() - started) / 1000;
  for (const [i, r] of ran.entries()) mustSucceed(`worker ${i + 1} of ${processes}`, r);
  await bench.mustHaveCompleted(name);
  // the workers have exited: their statistics are flushed
  const { rows: stats } = await bench.pool.query<{ updates: string; hot: string }>(
    "SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relid = 'users'::regclass",
  );
  const writes = Number(stats[0]?.updates ?? 0);
  const { rows: ended } = await bench.pool.query<{ total: number }>(
    "SELECT total_records::int AS total FROM batch_jobs WHERE batch_name = $1",
    [name],
  );
  return {
    rows,
    generate: { seconds: round(generate?.seconds ?? 0, 1), peakRssMb: generate?.peakRssMb },
    import: {
      seconds: imported.importSeconds,
      loadThenIndexSeconds: imported.loadThenIndexSeconds,
      ratio: imported.ratio,
      rounds: imported.rounds,
      peakRssMb: imported.peakRssMb,
    },
    enqueue: {
      seconds: round(enqueued.seconds, 2),
      chunks: planned.chunks,
      plannedRows: planned.rows,
      finalTotal: ended[0]?.total ?? 0,
    },
    processing: {
      processes,
      seconds: round(seconds, 1),
      rowsPerSecond: round(rows / seconds),
      hotShare: writes > 0 ? round(Number(stats[0]?.hot ?? 0) / writes, 3) : 0,
      peakRssMb: ran.map((r) => r.peakRssMb ?? 0),
    },
  };
}
