import { runSqlTwin } from "./ceiling";
import { type Bench, median, round } from "./harness";
import { USERS_OUTCOME_DIGEST } from "./sql-twin/users";

/**
 * Processing without I/O, default settings, `repeat` rounds, medians reported. Each round works on
 * freshly imported rows (the generated files, emptied, imported, vacuumed and checkpointed before
 * every timed run) and interleaves, as selected:
 *  - `processing`: the import (timed), psql \copy of the same files, our worker, and the
 *    reference script's `single`, `limit` and `seed` (../shared/baselines/run.sh);
 *  - `ceiling`: our worker, then the default job's SQL twin (bench/ceiling.ts) on the same rows
 *    imported again; the first round also checks that both leave the same outcomes.
 * Ours is one `graphile-worker --once` process, timed from its spawn to its exit.
 */

export interface RoundsOptions {
  rows: number;
  repeat: number;
  workers: number;
  processing: boolean;
  ceiling: boolean;
}

export async function processingRounds(bench: Bench, dir: string, options: RoundsOptions) {
  const imports: number[] = [];
  const copies: number[] = [];
  const processing: number[] = [];
  const shares: number[] = [];
  const twins: number[] = [];
  const references: Record<string, number[]> = {};
  let twinRows = 0;
  let twinMatchesJob: boolean | undefined;
  for (let i = 0; i < options.repeat; i++) {
    await bench.reset();
    const imported = await bench.importFiles(dir);
    if (options.processing) {
      imports.push(imported.seconds);
      await bench.reset();
      copies.push(await bench.psqlCopy(dir));
    }
    await bench.settle();
    const run = `plain-${i}`;
    const processed = await bench.process(run);
    processing.push(processed.rows / processed.seconds);
    shares.push(await bench.chunkShare(run, processed.seconds, options.workers));
    if (options.ceiling) {
      const jobDigest = i === 0 ? (await bench.pool.query(USERS_OUTCOME_DIGEST)).rows[0].digest : undefined;
      await bench.reset();
      await bench.importFiles(dir);
      await bench.settle();
      const twin = await runSqlTwin(bench.url);
      twins.push(twin.rowsPerSecond);
      twinRows = twin.rows;
      if (i === 0) twinMatchesJob = (await bench.pool.query(USERS_OUTCOME_DIGEST)).rows[0].digest === jobDigest;
    }
    if (options.processing) {
      for (const [reference, rowsPerSecond] of Object.entries((await bench.baselines(options.rows)) ?? {})) {
        references[reference] = [...(references[reference] ?? []), rowsPerSecond];
      }
    }
  }
  const ours = median(processing);
  return {
    processing: options.processing
      ? {
          rows: options.rows,
          rowsPerSecond: round(ours),
          runs: processing.map((r) => round(r)),
          references: Object.fromEntries(Object.entries(references).map(([k, v]) => [k, round(median(v))])),
          timeInChunks: round(median(shares), 3),
        }
      : undefined,
    import: options.processing
      ? {
          rows: options.rows,
          seconds: round(median(imports), 2),
          psqlCopySeconds: round(median(copies), 2),
          rowsPerSecond: round(options.rows / median(imports)),
        }
      : undefined,
    ceiling: options.ceiling
      ? {
          rows: twinRows,
          rowsPerSecond: round(median(twins)),
          runs: twins.map((r) => round(r)),
          ours: round(ours),
          oursRuns: processing.map((r) => round(r)),
          ratio: round(ours / median(twins), 2),
          target: 0.6,
          twinMatchesJob,
        }
      : undefined,
  };
}
