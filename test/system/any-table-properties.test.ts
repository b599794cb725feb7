import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { createMigratedDatabase, type TestDatabase } from "../support/database";
import {
  encodeValue,
  type HostileJobSpec,
  type ResultColumnSpec,
  type RowPlan,
  writeHostileJob,
} from "../support/hostile-job";
import { seed, startWorker } from "../support/processes";
import { runByName } from "../support/runs";

/**
 * Random tables, data and job behaviours through real worker processes: a key of any integer
 * type, dense, sparse, negative or at its type's limits; result columns of every kind, nullable
 * or not, given values that fit and values that do not; rows whose function returns, returns
 * the wrong shape, throws any value or hangs past its timeout. Whatever happens, every row of
 * the job's `where` ends completed with exactly what the function returned (read back and
 * compared by PostgreSQL) or failed with a message of its own; other rows are untouched; the
 * counters are the rows'; no job is left; the worker exits 0; the plan takes seconds at most.
 */

const INT_TYPES = {
  int2: { sql: "SMALLINT", min: -(2n ** 15n), max: 2n ** 15n - 1n },
  int4: { sql: "INTEGER", min: -(2n ** 31n), max: 2n ** 31n - 1n },
  int8: { sql: "BIGINT", min: -(2n ** 63n), max: 2n ** 63n - 1n },
} as const;
type IntType = keyof typeof INT_TYPES;

/**
 * A column kind: its SQL type, values that fit it and values that do not, and how PostgreSQL
 * tells a stored value from the one returned: `equal` compares the column with $1 (the value
 * as `param` gives it), or `readBack` compares in JavaScript what `c::text` reads.
 */
interface Kind {
  sql: string;
  fits: fc.Arbitrary<unknown>;
  misfits: fc.Arbitrary<unknown>;
  equal?: string;
  param?: (value: unknown) => unknown;
  readBack?: (text: string, value: unknown) => boolean;
}

/** From 4713 BC, PostgreSQL's first year, to the last instant a Date holds (275760 AD). */
const dates = fc.date({ min: new Date(Date.UTC(-4712, 0, 1)), max: new Date(8.64e15), noInvalidDate: true });
const pad = (value: number, width = 2) => String(value).padStart(width, "0");
/** A date's day as PostgreSQL writes it: four digits of year at least, and BC for the years before 1 AD. */
const dayText = (at: Date) => {
  const year = at.getUTCFullYear();
  const day = `${pad(year > 0 ? year : 1 - year, 4)}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
  return { day, era: year > 0 ? "" : " BC" };
};
const awkward = fc.constantFrom("\t", "\n", "\r", "\\", '"', "'", "{", "}", ",", " ", "é", "😀", "NULL", "\\N", "x");
const text = fc.string({ unit: fc.oneof(awkward, fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 })) });
const sameDouble = (read: string, value: unknown) => Object.is(Number.parseFloat(read), value);

const KINDS: Record<string, Kind> = {
  text: {
    sql: "TEXT",
    fits: text.filter((value) => !value.includes("\0")),
    misfits: fc.constantFrom("a\0b", "lone \uD800", 5, true),
    equal: "c = $1::text",
  },
  integer: {
    sql: "INTEGER",
    fits: fc.integer(),
    misfits: fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 1.5, Number.NaN, "7", 3_000_000_000),
    equal: "c = $1::int4",
    param: String,
  },
  bigint: {
    sql: "BIGINT",
    fits: fc.maxSafeInteger(),
    misfits: fc.constantFrom(2 ** 53, -(2 ** 60), 1.5, Number.POSITIVE_INFINITY, "7"),
    equal: "c = $1::int8",
    param: String,
  },
  int8: {
    sql: "BIGINT",
    fits: fc.bigInt({ min: INT_TYPES.int8.min, max: INT_TYPES.int8.max }),
    misfits: fc.constantFrom(2n ** 63n, -(2n ** 63n) - 1n, 1.5, "7"),
    equal: "c = $1::int8",
    param: String,
  },
  double: {
    sql: "DOUBLE PRECISION",
    fits: fc.double(),
    misfits: fc.constantFrom("1.5", true, 10n),
    readBack: sameDouble,
  },
  numeric: {
    sql: "NUMERIC",
    fits: fc.oneof(
      fc.integer().map(String),
      fc.tuple(fc.integer(), fc.nat()).map(([whole, fraction]) => `${whole}.${fraction}`),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
      fc.constantFrom("NaN", "Infinity", "-Infinity", ".5", "-0.000", "1e-7", "+3"),
    ),
    misfits: fc.constantFrom("12abc", "", "1..2", "abc", true),
    equal: "c = $1::numeric",
  },
  boolean: { sql: "BOOLEAN", fits: fc.boolean(), misfits: fc.constantFrom("true", 1, 0), equal: "c = $1::bool" },
  timestamp: {
    sql: "TIMESTAMP",
    fits: fc.oneof(
      fc.tuple(dates, fc.integer({ min: 0, max: 999 })).map(([at, micros]) => {
        const { day, era } = dayText(at);
        const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`;
        return `${day} ${time}.${pad(at.getUTCMilliseconds(), 3)}${pad(micros, 3)}${era}`;
      }),
      fc.constantFrom("infinity", "-infinity"),
    ),
    misfits: fc.constantFrom("not a date", "2024-13-01 00:00:00", 5),
    equal: "c = $1::timestamp",
  },
  timestamptz: {
    sql: "TIMESTAMPTZ",
    fits: dates,
    misfits: fc.constantFrom(new Date(Number.NaN), "2024-01-01", 5),
    equal: "c = $1::timestamptz",
  },
  date: {
    sql: "DATE",
    fits: dates.map((at) => {
      const { day, era } = dayText(at);
      return `${day}${era}`;
    }),
    misfits: fc.constantFrom("2024-02-30", "soon", 20240101),
    equal: "c = $1::date",
  },
  jsonb: {
    sql: "JSONB",
    fits: fc.jsonValue().filter((value) => value !== null),
    misfits: fc.constantFrom({ a: undefined }, [Number.NaN], "x\0y", { deep: [1, Number.POSITIVE_INFINITY] }, 10n),
    equal: "c = $1::jsonb",
    param: (value) => JSON.stringify(value),
  },
};

/** One result column's value in a row: whether it fits the column, by construction. */
interface Cell {
  fits: boolean;
  value: unknown;
}

interface Row {
  key: bigint;
  mine: boolean;
  plan: RowPlan;
  /** Whether the row must end completed: its function returns values that all fit. */
  completes: boolean;
  cells: Cell[];
}

interface Scenario {
  keyType: IntType;
  jobKeyType: HostileJobSpec["keyType"];
  columns: ResultColumnSpec[];
  rows: Row[];
}

const thrown = fc.oneof(
  fc.string().map((message) => new Error(message)),
  fc.constantFrom(
    "a string",
    "",
    42,
    undefined,
    null,
    Symbol("s"),
    10n,
    Object.create(null),
    { message: "an object's message" },
    { message: 7 },
    { code: "E1" },
    [1, "two"],
    new Error("nul \0 and lone \uD800"),
  ),
);

function keysOf(type: IntType): fc.Arbitrary<bigint[]> {
  const { min, max } = INT_TYPES[type];
  const limits = [min, min + 1n, -1n, 0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, max - 1n, max];
  const near = fc.constantFrom(...limits.filter((key) => key >= min && key <= max));
  const dense = fc
    .tuple(fc.oneof(fc.bigInt({ min, max: max - 40n }), near), fc.integer({ min: 1, max: 30 }))
    .map(([first, count]) => Array.from({ length: count }, (_, i) => first + BigInt(i)).filter((key) => key <= max));
  const sparse = fc.uniqueArray(fc.oneof(fc.bigInt({ min, max }), near), { minLength: 1, maxLength: 30 });
  return fc.oneof(dense, sparse);
}

function rowOf(columns: ResultColumnSpec[]): fc.Arbitrary<Omit<Row, "key" | "mine">> {
  const cell = (column: ResultColumnSpec): fc.Arbitrary<Cell> => {
    const kind = KINDS[column.kind] as Kind;
    return fc.oneof(
      { weight: 8, arbitrary: kind.fits.map((value) => ({ fits: true, value })) },
      { weight: 1, arbitrary: kind.misfits.map((value) => ({ fits: false, value })) },
      { weight: 1, arbitrary: fc.constant({ fits: column.nullable, value: null }) },
    );
  };
  const cells = fc.tuple(...columns.map(cell));
  const returning = fc
    .tuple(fc.constantFrom("return" as const, "return-sync" as const), cells, fc.boolean())
    .map(([how, cells, stray]) => ({
      plan: { do: how, values: cells.map((c) => c.value), stray },
      completes: cells.every((c) => c.fits),
      cells,
    }));
  const failing = fc.oneof(
    fc.tuple(cells, fc.nat(columns.length - 1)).map(([cells, omit]) => ({
      plan: { do: "omit" as const, values: cells.map((c) => c.value), omit },
      cells,
    })),
    fc.tuple(fc.constantFrom("throw" as const, "throw-sync" as const), thrown).map(([how, value]) => ({
      plan: { do: how, thrown: value },
      cells: [],
    })),
    fc
      .constantFrom(5, "text", null, undefined, [1, 2], true)
      .map((value) => ({ plan: { do: "return-raw" as const, value }, cells: [] })),
  );
  return fc.oneof(
    { weight: 6, arbitrary: returning },
    { weight: 3, arbitrary: failing.map((row) => ({ ...row, completes: false })) },
    { weight: 1, arbitrary: fc.constant({ plan: { do: "hang" as const }, completes: false, cells: [] as Cell[] }) },
  );
}

const scenarios: fc.Arbitrary<Scenario> = fc
  .record({
    keyType: fc.constantFrom<IntType>("int2", "int4", "int8"),
    columns: fc.array(fc.record({ kind: fc.constantFrom(...Object.keys(KINDS)), nullable: fc.boolean() }), {
      minLength: 1,
      maxLength: 4,
    }),
  })
  .chain(({ keyType, columns }) =>
    fc
      .record({
        keys: keysOf(keyType),
        jobKeyType: fc.constantFrom<HostileJobSpec["keyType"]>("number", "bigint", "string"),
      })
      .chain(({ keys, jobKeyType }) =>
        fc.tuple(...keys.map(() => fc.tuple(rowOf(columns), fc.nat(9)))).map((rows) => ({
          keyType,
          // a number holds keys up to 2^53 only: a job over larger ones takes them as BigInts
          jobKeyType:
            jobKeyType === "number" && keys.some((key) => key > 2n ** 53n - 1n || key < -(2n ** 53n - 1n))
              ? "bigint"
              : jobKeyType,
          columns,
          // a tenth of the rows are not the job's: its `where` leaves them out
          rows: rows.map(([row, dice], index) => ({ ...row, key: keys[index] as bigint, mine: dice > 0 })),
        })),
      ),
  );

/** The hang's timeout: short, so that a case stays short, and long beside a record that does not hang, on a busy machine too. */
const ROW_TIMEOUT_MS = 1500;

describe("a job over any table, any data", () => {
  let db: TestDatabase;
  let jobsDir: string;
  let runs = 0;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    jobsDir = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-jobs-"));
  });
  afterAll(async () => {
    fs.rmSync(jobsDir, { recursive: true, force: true });
    await db.drop();
  });

  /** Runs the scenario through `seed enqueue` and a worker process; returns what broke, if anything. */
  async function problemsOf(scenario: Scenario): Promise<string[]> {
    const name = `prop-${++runs}`;
    const spec: HostileJobSpec = {
      name: "prop",
      table: "prop_t",
      keyType: scenario.jobKeyType,
      columns: scenario.columns,
      rowTimeoutMs: ROW_TIMEOUT_MS,
    };
    await writeHostileJob(jobsDir, spec);
    const cells = scenario.columns.map((column, index) => `c${index} ${(KINDS[column.kind] as Kind).sql}`);
    await db.pool.query(`
      DROP TABLE IF EXISTS prop_t;
      CREATE TABLE prop_t (id ${INT_TYPES[scenario.keyType].sql} PRIMARY KEY, tag TEXT NOT NULL, plan JSONB NOT NULL,
                           seen TEXT, ${cells.join(", ")},
                           prop_status TEXT NOT NULL DEFAULT 'pending', prop_attempts INTEGER NOT NULL DEFAULT 0,
                           prop_error TEXT, prop_run_id BIGINT, prop_processed_at TIMESTAMPTZ)`);
    await db.pool.query(
      "INSERT INTO prop_t (id, tag, plan) SELECT * FROM unnest($1::int8[], $2::text[], $3::jsonb[])",
      [
        scenario.rows.map((row) => String(row.key)),
        scenario.rows.map((row) => (row.mine ? "mine" : "other")),
        scenario.rows.map((row) => JSON.stringify(encodeValue(row.plan))),
      ],
    );
    const env = {
      DATABASE_URL: db.url,
      JOBS_DIR: jobsDir,
      CHUNK_SIZE: "4",
      MAX_ATTEMPTS: "1",
      RETRY_DELAY_S: "0",
      PLAN_TIMEOUT_S: "30",
      WORKERS: "2",
      METRICS_PORT: "0",
      LOG_LEVEL: "error",
    };
    const mine = scenario.rows.filter((row) => row.mine);
    const enqueued = await seed(["enqueue", "--job", "prop", "--batch-name", name], env);
    if (mine.length === 0) {
      return enqueued.code === 1 && enqueued.stderr.includes("nothing to process")
        ? []
        : [`enqueue of no rows: ${enqueued.code} ${enqueued.stderr}`];
    }
    if (enqueued.code !== 0) return [`enqueue exited ${enqueued.code}: ${enqueued.stderr}`];
    const worker = await startWorker(["--once"], env).exited;
    const problems: string[] = [];
    if (worker.code !== 0)
      problems.push(`worker exited ${worker.code ?? worker.signal}: ${worker.stderr.slice(-2000)}`);
    problems.push(...(await rowProblems(scenario)));

    const run = await runByName(db.pool, name);
    const completed = mine.filter((row) => row.completes).length;
    const expected = { status: "completed", total_records: mine.length, processed_records: completed };
    const counted = { status: run.status, total_records: run.total_records, processed_records: run.processed_records };
    if (JSON.stringify(counted) !== JSON.stringify(expected) || run.failed_records !== mine.length - completed) {
      problems.push(`run ${JSON.stringify(run)}, expected ${JSON.stringify(expected)}`);
    }
    const { rows: jobs } = await db.pool.query("SELECT task_identifier, last_error FROM graphile_worker.jobs");
    if (jobs.length > 0) problems.push(`jobs left: ${JSON.stringify(jobs)}`);
    return problems;
  }

  /** Each row as its plan calls for, compared by PostgreSQL; no error holding another row's plan. */
  async function rowProblems(scenario: Scenario): Promise<string[]> {
    const problems: string[] = [];
    const { rows } = await db.pool.query<{
      id: string;
      status: string;
      attempts: number;
      error: string | null;
      seen: string | null;
      cells: (string | null)[];
    }>(
      `SELECT id::text, prop_status AS status, prop_attempts AS attempts, prop_error AS error, seen,
              ARRAY[${scenario.columns.map((_, index) => `c${index}::text`).join(", ")}] AS cells
         FROM prop_t`,
    );
    const byKey = new Map(rows.map((row) => [row.id, row]));
    for (const row of scenario.rows) {
      const stored = byKey.get(String(row.key));
      const said = (what: string) =>
        problems.push(`row ${row.key} (${JSON.stringify(encodeValue(row.plan))}): ${what}`);
      if (!stored) {
        said("is gone");
        continue;
      }
      if (!row.mine) {
        if (stored.status !== "pending" || stored.attempts !== 0 || stored.seen !== null)
          said("touched, not the job's");
        continue;
      }
      if (!row.completes) {
        if (stored.status !== "failed" || !stored.error) said(`ended ${stored.status} (${stored.error}), not failed`);
        else if (stored.cells.some((cell) => cell !== null) || stored.seen !== null)
          said("failed with results written");
        continue;
      }
      if (stored.status !== "completed") {
        said(`ended ${stored.status}: ${stored.error}`);
        continue;
      }
      if (stored.seen !== `${scenario.jobKeyType} ${row.key}`) said(`the function saw key ${stored.seen}`);
      for (const [index, column] of scenario.columns.entries()) {
        const { value } = row.cells[index] as Cell;
        const kind = KINDS[column.kind] as Kind;
        const read = stored.cells[index] ?? null;
        if (value === null) {
          if (read !== null) said(`c${index} is ${read}, not NULL`);
        } else if (kind.readBack) {
          if (read === null || !kind.readBack(read, value)) said(`c${index} is ${read}, not ${String(value)}`);
        } else {
          const { rows: same } = await db.pool.query(
            `SELECT ${kind.equal} AS same FROM (SELECT c${index} AS c FROM prop_t WHERE id = $2::int8) stored`,
            [kind.param ? kind.param(value) : value, String(row.key)],
          );
          if (same[0]?.same !== true) said(`c${index} is ${read}, not ${JSON.stringify(encodeValue(value))}`);
        }
      }
    }
    // an error names its own row's values at most: no other row's key or text
    const marks = (row: Row) =>
      [String(row.key), ...row.cells.map((cell) => cell.value)].filter(
        (mark): mark is string => typeof mark === "string" && mark.length > 6,
      );
    const byStoredKey = new Map(scenario.rows.map((row) => [String(row.key), row]));
    for (const stored of rows) {
      if (!stored.error) continue;
      const own = marks(byStoredKey.get(stored.id) as Row);
      for (const other of scenario.rows) {
        if (String(other.key) === stored.id) continue;
        const leaked = marks(other).find((mark) => !own.includes(mark) && stored.error?.includes(mark));
        if (leaked !== undefined)
          problems.push(`row ${stored.id}'s error holds row ${other.key}'s ${leaked}: ${stored.error}`);
      }
    }
    return problems;
  }

  const expectNoProblems = async (scenario: Scenario) => {
    const problems = await problemsOf(scenario);
    if (problems.length > 0) throw new Error(problems.join("\n"));
  };

  /** A row that returns `values`, each fitting its column or not, as the case says. */
  const returns = (key: bigint, cells: Cell[]): Row => ({
    key,
    mine: true,
    plan: { do: "return", values: cells.map((cell) => cell.value) },
    completes: cells.every((cell) => cell.fits),
    cells,
  });
  const throws = (key: bigint, value: unknown): Row => ({
    key,
    mine: true,
    plan: { do: "throw-sync", thrown: value },
    completes: false,
    cells: [],
  });
  const fits = (value: unknown): Cell => ({ fits: true, value });
  const misfits = (value: unknown): Cell => ({ fits: false, value });
  const PAST_2_53 = Array.from({ length: 16 }, (_, i) => 9007199254740985n + BigInt(i));

  // the issue's reports, and what the property found, as fixed cases
  it.each<[string, Scenario]>([
    [
      "a function that throws what is no Error, and JSON of every shape",
      {
        keyType: "int4",
        jobKeyType: "number",
        columns: [{ kind: "jsonb", nullable: true }],
        rows: [
          throws(1n, Object.create(null)),
          throws(2n, Object.assign(new Error("x"), { message: 42 })),
          throws(3n, { message: "x" }),
          returns(4n, [fits(["a", "b"])]),
          returns(5n, [fits("hello")]),
          returns(6n, [fits([])]),
          returns(7n, [fits({ nested: [1, null, true, "x\ty", { deeper: [] }] })]),
        ],
      },
    ],
    [
      "contiguous keys across 2^53, one result out of its column's range among them",
      {
        keyType: "int8",
        jobKeyType: "bigint",
        columns: [
          { kind: "integer", nullable: false },
          { kind: "numeric", nullable: true },
        ],
        rows: PAST_2_53.map((key, i) =>
          returns(key, [
            i === 3 ? misfits(3_000_000_000) : i === 5 ? misfits(1.5) : fits(i),
            i === 7 ? misfits("12abc") : fits(`${i}.5`),
          ]),
        ),
      },
    ],
    [
      "keys at both ends of BIGINT and far apart, as text",
      {
        keyType: "int8",
        jobKeyType: "string",
        columns: [{ kind: "text", nullable: false }],
        rows: [-(2n ** 63n), 1n, 10n ** 12n, 2n ** 63n - 1n].map((key) => returns(key, [fits(`key ${key}`)])),
      },
    ],
  ])("%s", async (_, scenario) => {
    await expectNoProblems(scenario);
  });

  it("ends every row as its function's outcome calls for, for any table and any data", async () => {
    await fc.assert(fc.asyncProperty(scenarios, expectNoProblems), {
      numRuns: Number(process.env.ANY_TABLE_RUNS ?? 12),
      endOnFailure: true,
      ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH } : {}),
    });
  }, 600_000);
});
