import fs from "node:fs";
import path from "node:path";
import { CSV_COLUMNS } from "../seed/user-rows";
import { type Bench, exec, median, mustSucceed, round } from "./harness";

/** psql sessions loading files at once in the reference, as `seed import` does by default. */
const COPY_LANES = 4;

/** The reference's index builds get what `seed import` gives its own (seed/deferred-index.ts). */
const BUILD_MEMORY = "1GB";

/** The constraints of users that an index holds (the primary key, UNIQUE (email)), as ALTER TABLE adds them. */
async function indexConstraints(bench: Bench): Promise<{ name: string; definition: string }[]> {
  const { rows } = await bench.pool.query<{ name: string; definition: string }>(
    `SELECT conname AS name, pg_get_constraintdef(oid) AS definition
       FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype IN ('p', 'u') ORDER BY contype, conname`,
  );
  return rows;
}

/** Loads the files with psql \copy, COPY_LANES at a time, into users without its indexes, then builds them; seconds. */
async function loadThenIndex(bench: Bench, dir: string, constraints: { name: string; definition: string }[]) {
  const files = fs
    .readdirSync(dir)
    .filter((name) => name.endsWith(".csv"))
    .sort();
  for (const { name } of constraints) await bench.pool.query(`ALTER TABLE users DROP CONSTRAINT "${name}"`);
  await bench.pool.query("CHECKPOINT");
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < files.length) {
      const file = path.join(dir, files[next++] as string);
      const copy = `\\copy users (${CSV_COLUMNS.join(", ")}) FROM '${file}' WITH (FORMAT csv, HEADER true)`;
      mustSucceed(
        "psql \\copy",
        await exec("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", bench.url, "-c", copy], bench.env),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(COPY_LANES, files.length) }, lane));
  const client = await bench.pool.connect();
  try {
    await client.query(`SET maintenance_work_mem = '${BUILD_MEMORY}'`);
    for (const { name, definition } of constraints) {
      await client.query(`ALTER TABLE users ADD CONSTRAINT "${name}" ${definition}`);
    }
    await client.query("RESET maintenance_work_mem");
  } finally {
    client.release();
  }
  return (performance.now() - started) / 1000;
}

export interface ImportRound {
  rows: number;
  importSeconds: number;
  loadThenIndexSeconds: number;
  peakRssMb?: number;
}

/** One round: the reference, then `seed import`, each into an empty, checkpointed table. */
async function importRound(bench: Bench, dir: string): Promise<ImportRound> {
  await bench.reset();
  const constraints = await indexConstraints(bench);
  let loadThenIndexSeconds: number;
  try {
    loadThenIndexSeconds = await loadThenIndex(bench, dir, constraints);
  } finally {
    await bench.reset();
    const left = new Set((await indexConstraints(bench)).map((c) => c.name));
    for (const { name, definition } of constraints) {
      if (!left.has(name)) await bench.pool.query(`ALTER TABLE users ADD CONSTRAINT "${name}" ${definition}`);
    }
  }

  await bench.pool.query("CHECKPOINT");
  const imported = await bench.importFiles(dir, true);
  const rows = (JSON.parse(imported.stdout.trim().split("\n").pop() as string) as { rows: number }).rows;
  return {
    rows,
    importSeconds: round(imported.seconds, 1),
    loadThenIndexSeconds: round(loadThenIndexSeconds, 1),
    peakRssMb: imported.peakRssMb,
  };
}

/**
 * `seed import` of `dir` into an empty users table against what PostgreSQL needs to load the
 * same files when the indexes are built after the load: psql \copy four files at a time into
 * the table without its primary key and unique email index, then both built, timed together.
 * `rounds` rounds, the two interleaved (a single figure of either varies by 15% on this kind of
 * machine), medians reported. The reference's schema is restored even when it fails; the table
 * ends as the last import leaves it.
 */
export async function importIntoEmpty(
  bench: Bench,
  dir: string,
  rounds: number,
): Promise<{
  rows: number;
  importSeconds: number;
  loadThenIndexSeconds: number;
  ratio: number;
  rounds: ImportRound[];
  peakRssMb?: number;
}> {
  const done: ImportRound[] = [];
  for (let i = 0; i < rounds; i++) done.push(await importRound(bench, dir));
  const importSeconds = median(done.map((r) => r.importSeconds));
  const loadThenIndexSeconds = median(done.map((r) => r.loadThenIndexSeconds));
  const peaks = done.flatMap((r) => (r.peakRssMb === undefined ? [] : [r.peakRssMb]));
  return {
    rows: (done[done.length - 1] as ImportRound).rows,
    importSeconds,
    loadThenIndexSeconds,
    ratio: round(importSeconds / loadThenIndexSeconds, 2),
    rounds: done,
    peakRssMb: peaks.length > 0 ? Math.max(...peaks) : undefined,
  };
}
