import { column, defineJob, JobDefinitionError } from "#pg-batch";
import { JOBS_DIR } from "../../src/base/paths";
import { parseConfig } from "../../src/config/config";
import { useCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
import { JobCatalog, loadCatalog } from "../../src/jobs/catalog";
import { checkJobAgainstDatabase } from "../../src/jobs/catalog-check";
import { stateMigrationSql } from "../../src/jobs/state-migration";
import { runSettings, startRun } from "../../workflows/start-run";
import { createMigratedDatabase, type TestDatabase } from "../support/database";
import { runRoundInProcess } from "../support/in-process";
import { runByName } from "../support/runs";

const process = async () => undefined;

describe("defineJob", () => {
  it("refuses a definition it could not run, saying what is wrong", () => {
    const base = { table: "t", key: "id", reads: {}, process };
    expect(() => defineJob({ ...base, name: "Bad Name" })).toThrow(JobDefinitionError);
    expect(() => defineJob({ ...base, name: "ok", reads: { a: column.text(), id: column.integer() } })).toThrow(
      "job ok: property id is read twice",
    );
    expect(() => defineJob({ ...base, name: "ok", defaults: { chunkSize: 0 } })).toThrow(
      "job ok: default chunkSize must be a whole number of at least 1",
    );
    expect(() => defineJob({ ...base, name: "ok", key: "x".repeat(64) })).toThrow("is not a PostgreSQL identifier");
  });

  it("reads a table name as schema and table, refusing one that names no table", () => {
    const named = (table: string) => {
      const { schema, table: name } = defineJob({ name: "t", table, key: "id", reads: {}, process });
      return [schema, name];
    };
    expect(named("orders")).toEqual(["public", "orders"]);
    expect(named("Billing.Orders")).toEqual(["Billing", "Orders"]);
    expect(named('"my.schema"."t"')).toEqual(["my.schema", "t"]);
    expect(named('"a ""b"".c"."orders.v2"')).toEqual(['a "b".c', "orders.v2"]);
    const forms = `is not "table" or "schema.table" (a name holding a dot in double quotes: '"my.schema"."t"')`;
    for (const table of ["public.orders.v2", "a..b", ".orders", "orders.", "", '"a"b.c', '"my.schema.t', '""."t"']) {
      expect(() => named(table)).toThrow(`job t: table ${JSON.stringify(table)} ${forms}`);
    }
  });

  it("refuses two jobs keeping their state in the same columns of one table", () => {
    const job = (name: string, state?: string) => defineJob({ name, table: "t", key: "id", reads: {}, state, process });
    expect(() => new JobCatalog([job("a"), job("b")])).toThrow(
      "jobs a and b keep their state in the same columns of public.t: give one a state prefix of its own",
    );
    expect(new JobCatalog([job("a"), job("b", "b")]).jobs.map((j) => j.name)).toEqual(["a", "b"]);
  });

  it("finds the jobs of jobs/, the original's among them", () => {
    const catalog = loadCatalog(JOBS_DIR);
    expect(catalog.get("users")).toMatchObject({ table: "users", key: "id", state: { status: "batch_status" } });
    expect(catalog.get("orders-reprice")).toMatchObject({ table: "orders", key: "order_id" });
    expect(() => catalog.get("nope")).toThrow('no job named "nope" in jobs/');
  });
});

describe("a job over a table whose names need quoting, writing no result", () => {
  // names a careless builder would break on: quotes, spaces, capitals, a reserved word
  const job = defineJob({
    name: "send-odd",
    table: 'shop.Odd "Table" name',
    key: "Order No",
    where: { select: ["a", "b"] },
    reads: { label: column.text('Label "x"'), weight: column.double().nullable() },
    state: "send",
    async process(record, ctx) {
      if (record.label.startsWith("bad")) throw new Error(`refused ${record.label}`);
      seen.push({ key: record["Order No"], label: record.label, attempt: ctx.attempt });
      return undefined;
    },
  });
  const seen: { key: number; label: string; attempt: number }[] = [];
  let db: TestDatabase;
  beforeAll(() => useCatalog([job]));
  afterAll(() => useCatalog(loadCatalog(JOBS_DIR).jobs));
  beforeEach(async () => {
    seen.length = 0;
    db = await createMigratedDatabase();
    await db.pool.query(`
      CREATE SCHEMA shop;
      CREATE TABLE shop."Odd ""Table"" name" ("Order No" INTEGER PRIMARY KEY, "Label ""x""" TEXT NOT NULL,
                                             weight DOUBLE PRECISION, "select" TEXT NOT NULL);
      INSERT INTO shop."Odd ""Table"" name"
      SELECT n, CASE WHEN n % 10 = 0 THEN 'bad ' ELSE 'ok ' END || n, n / 2.0, (ARRAY['a', 'b', 'c'])[n % 3 + 1]
        FROM generate_series(1, 300) AS n`);
  });
  afterEach(() => db.drop());

  it("is refused until the generated migration gives its table the state columns", async () => {
    const client = await db.pool.connect();
    try {
      expect(await checkJobAgainstDatabase(client, job)).toEqual([
        'job send-odd: shop.Odd "Table" name lacks the state column(s) send_status, send_attempts, send_error, ' +
          "send_run_id, send_processed_at: add them with the migration `npm run jobs -- migration send-odd` writes",
      ]);
      await client.query(stateMigrationSql(job));
      expect(await checkJobAgainstDatabase(client, job)).toEqual([]);
    } finally {
      client.release();
    }
  });

  it("runs end to end: every row of its `where` once, failures recorded, other rows untouched", async () => {
    await db.pool.query(stateMigrationSql(job));
    const pool = withPool(db.pool);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "70", MAX_ATTEMPTS: "1" }), job);
    const { run } = await startRun(pool, job, "odd", settings, "test", "now");
    const planned = await runByName(db.pool, "odd");
    expect(planned.total_records).toBe(200);
    await runRoundInProcess(db.pool, run.id);

    const { rows } = await db.pool.query(`
      SELECT "select" = 'c' AS other, send_status AS status, count(*)::int AS n, min(send_error) AS error
        FROM shop."Odd ""Table"" name" GROUP BY 1, 2 ORDER BY 1, 2`);
    expect(rows).toEqual([
      { other: false, status: "completed", n: 180, error: null },
      { other: false, status: "failed", n: 20, error: "refused bad 10" },
      { other: true, status: "pending", n: 100, error: null },
    ]);
    expect(seen).toHaveLength(180);
    expect(new Set(seen.map((s) => s.key)).size).toBe(180);
    expect(seen.every((s) => s.attempt === 1 && s.label.startsWith("ok "))).toBe(true);
    expect(await runByName(db.pool, "odd")).toMatchObject({
      status: "completed",
      processed_records: 180,
      failed_records: 20,
    });
  });
});

describe("the catalog check of a job's touch columns and `where` values", () => {
  const items = (spec: Pick<Parameters<typeof defineJob>[0], "touch" | "where">) =>
    defineJob({
      name: "items",
      table: "items",
      key: "id",
      reads: { label: column.text() },
      writes: { total: column.integer().nullable() },
      state: "item",
      process: async () => ({ total: 1 }),
      ...spec,
    });
  let db: TestDatabase;
  const check = async (job: ReturnType<typeof items>) => {
    const client = await db.pool.connect();
    try {
      return await checkJobAgainstDatabase(client, job);
    } finally {
      client.release();
    }
  };
  beforeAll(async () => {
    db = await createMigratedDatabase();
    await db.pool.query(`
      CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL, total INTEGER, qty INTEGER NOT NULL,
                          flag BOOLEAN NOT NULL, seen TIMESTAMPTZ, stamp TIMESTAMP)`);
    await db.pool.query(stateMigrationSql(items({})));
  });
  afterAll(() => db.drop());

  it("takes only time columns the job uses for nothing else as touch columns", async () => {
    expect(await check(items({ touch: ["seen", "stamp"] }))).toEqual([]);
    const touch = ["seen", "label", "total", "item_processed_at", "id", "seen", "qty"];
    const sets = "touch sets it to now() with every outcome";
    expect(await check(items({ touch }))).toEqual([
      `job items: touch column public.items.label is read as label: ${sets}`,
      `job items: touch column public.items.total is written from total: ${sets}`,
      `job items: touch column public.items.item_processed_at is a state column: ${sets}`,
      `job items: touch column public.items.id is its key: ${sets}`,
      "job items: touch column public.items.seen is listed twice",
      "job items: touch column public.items.qty is int4, not timestamptz or timestamp",
    ]);
  });

  it("lets PostgreSQL judge each `where` value against its column's type, naming every bad one", async () => {
    expect(await check(items({ where: { qty: [1, "2"], flag: [true, "no"], label: ["a", 3] } }))).toEqual([]);
    const where = { qty: [1, "abc", 1.5, true], flag: ["yes", "maybe"], label: [false, "x"] };
    expect(await check(items({ where }))).toEqual([
      "job items: where value true for public.items.qty (int4): a boolean compares only with a boolean column",
      'job items: where value "abc" for public.items.qty (int4): invalid input syntax for type integer: "abc"',
      'job items: where value 1.5 for public.items.qty (int4): invalid input syntax for type integer: "1.5"',
      'job items: where value "maybe" for public.items.flag (bool): invalid input syntax for type boolean: "maybe"',
      "job items: where value false for public.items.label (text): a boolean compares only with a boolean column",
    ]);
  });
});
