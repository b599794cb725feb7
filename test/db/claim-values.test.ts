import fc from "fast-check";
import { column, defineJob, type Instant } from "#pg-batch";
import { type SliceRequest, workSlice } from "../../src/chunks/slice";
import { plainArrayLiteral } from "../../src/db/literals";
import { ROW_TYPES } from "../../src/db/types";
import { ClaimedRows } from "../../src/jobs/claimed-rows";
import { stateMigrationSql } from "../../src/jobs/state-migration";
import { createMigratedDatabase, type TestDatabase, useTestDatabase } from "../support/database";

/**
 * A slice claims its rows as COPY's text and writes its outcome columns as array literals: the
 * values a job's function sees and the values written must be those node-postgres's own
 * queries give, for every column kind and for text that COPY and array literals escape.
 */

/** Characters COPY's text format or an array literal escapes or treats apart, and some that need no escape. */
const awkward = fc.constantFrom(
  "\t",
  "\n",
  "\r",
  "\\",
  '"',
  "'",
  "\b",
  "\f",
  "\v",
  "\u0001",
  "N",
  "NULL",
  ",",
  "{",
  "}",
  " ",
  "é",
  "😀",
  "a",
  "$1",
);
const awkwardText = fc.string({ unit: awkward, maxLength: 12 });

describe("the values a slice claims", () => {
  const job = defineJob({
    name: "every-kind",
    table: "kinds",
    key: "id",
    where: { tag: ["keep", 'it\'s "quoted"', "back\\slash", "{brace,comma}"] },
    reads: {
      text: column.text().nullable(),
      integer: column.integer().nullable(),
      bigint: column.bigint().nullable(),
      double: column.double().nullable(),
      numeric: column.numeric().nullable(),
      boolean: column.boolean().nullable(),
      timestamp: column.timestamp().nullable(),
      timestamptz: column.timestamptz().nullable(),
      date: column.date().nullable(),
      jsonb: column.jsonb().nullable(),
    },
    state: "kinds",
    async process() {
      return undefined;
    },
  });
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    await db.pool.query(`
      CREATE TABLE kinds (id BIGINT PRIMARY KEY, tag TEXT NOT NULL, text TEXT, integer INTEGER, bigint BIGINT,
                          double DOUBLE PRECISION, numeric NUMERIC, boolean BOOLEAN, timestamp TIMESTAMP,
                          timestamptz TIMESTAMPTZ, date DATE, jsonb JSONB)`);
    await db.pool.query(stateMigrationSql(job));
  });
  afterAll(() => db.drop());

  /** The rows of ids [first, last] one slice hands the job's function. */
  async function claim(first: number, last: number): Promise<ClaimedRows> {
    const request: SliceRequest = {
      job,
      runId: 1,
      round: 0,
      chunkNo: 0,
      firstId: BigInt(first),
      lastId: BigInt(last),
      limit: 1000,
      maxAttempts: 3,
      plannedAt: new Date(),
      statementTimeoutMs: 5000,
      idleTimeoutMs: 5000,
    };
    let claimed = new ClaimedRows();
    const client = await db.pool.connect();
    try {
      // no outcome: the slice writes nothing and releases its rows
      await workSlice(client, request, async (rows) => {
        claimed = rows;
        return [];
      });
    } finally {
      client.release();
    }
    return claimed;
  }

  /** Each claimed row's record, its state beside it. */
  const asRead = (rows: ClaimedRows) =>
    rows.records.map((record, index) => ({
      ...record,
      $status: rows.statuses[index],
      $run: rows.runs[index],
      $attempts: rows.attempts[index],
    }));

  /** The same rows as node-postgres reads them from a SELECT, with the types a claim gives. */
  async function selected(first: number, last: number): Promise<Record<string, unknown>[]> {
    const { rows } = await db.pool.query({
      text: `SELECT id, text, integer, bigint, double, numeric, boolean, timestamp, timestamptz, date, jsonb,
                    kinds_status AS "$status", kinds_run_id AS "$run", kinds_attempts AS "$attempts"
               FROM kinds WHERE id BETWEEN $1 AND $2 AND tag <> 'other' ORDER BY id`,
      values: [first, last],
      types: ROW_TYPES,
    });
    return rows;
  }

  it("are those a SELECT reads, for every column kind, NULLs and edge values, and only the rows of the job's `where`", async () => {
    await db.pool.query(`
      INSERT INTO kinds VALUES
        (1, 'keep', 'plain', 1, 9007199254740991, 1.5, 12345678901234567890.123456789, true,
         '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.5+05:30', '2024-02-29', '{"a": [1, "x\\ty"], "b": null}'),
        (2, 'it''s "quoted"', '', -2147483648, -9007199254740991, 'NaN', 'NaN', false,
         '0001-01-01 00:00:00', '1970-01-01 00:00:00+00', '0001-01-01', '"text"'),
        (3, 'back\\slash', E'tab\\there\\nnew\\\\line\\rcr', 0, 0, '-Infinity', 0, NULL,
         'infinity', '4713-01-01 00:00:00+00 BC', 'infinity', 'null'),
        (4, '{brace,comma}', '\\N', NULL, NULL, 'Infinity', -0.5, true, NULL, NULL, NULL, '[]'),
        (5, 'keep', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (6, 'other', 'not the job''s', 6, 6, 6, 6, true, NULL, NULL, NULL, NULL)`);
    const claimed = await claim(1, 6);
    expect(claimed.keys).toEqual(["1", "2", "3", "4", "5"]);
    expect(asRead(claimed)).toEqual(await selected(1, 6));
    expect(claimed.unreadable.size).toBe(0);
    expect(claimed.records[2]?.text).toBe("tab\there\nnew\\line\rcr");
    expect(claimed.records[3]?.text).toBe("\\N");
    expect(claimed.records[4]?.text).toBeNull();
  });

  it("fail unread a row holding a value its kind cannot give exactly, and keep a timestamptz's microseconds", async () => {
    await db.pool.query(`
      INSERT INTO kinds (id, tag, bigint, timestamptz) VALUES
        (11, 'keep', 9007199254740993, NULL),
        (12, 'keep', -9007199254740992, NULL),
        (13, 'keep', NULL, 'infinity'),
        (14, 'keep', NULL, '294276-12-31 23:59:59.999999+00'),
        (15, 'keep', 1, '2024-02-29 23:59:59.123456+00')`);
    const claimed = await claim(11, 15);
    expect([0, 1, 2, 3, 4].map((index) => claimed.unreadable.get(index))).toEqual([
      "column bigint holds 9007199254740993, beyond 2^53, where a number is no longer exact: read it as column.int8()",
      "column bigint holds -9007199254740992, beyond 2^53, where a number is no longer exact: read it as column.int8()",
      "column timestamptz holds infinity, which a Date cannot hold",
      "column timestamptz holds 294276-12-31 23:59:59.999999+00, which a Date cannot hold",
      undefined,
    ]);
    const instant = claimed.records[4]?.timestamptz as Instant;
    expect(instant).toBeInstanceOf(Date);
    expect(instant.toISOString()).toBe("2024-02-29T23:59:59.123Z");
    expect(column.timestamptz().toElement(instant)).toBe(instant.text);
    expect(instant.text).toMatch(/\.123456/);
  });

  it("keep any text as it is stored", async () => {
    let next = 1000;
    await fc.assert(
      fc.asyncProperty(fc.array(awkwardText, { minLength: 1, maxLength: 20 }), async (texts) => {
        const first = next;
        next += texts.length;
        await db.pool.query(
          `INSERT INTO kinds (id, tag, text) SELECT $1 + n - 1, 'keep', t FROM unnest($2::text[]) WITH ORDINALITY AS x(t, n)`,
          [first, texts],
        );
        const claimed = await claim(first, next - 1);
        expect(claimed.records.map((record) => record.text)).toEqual(texts);
      }),
      { numRuns: 60 },
    );
  });
});

describe("an outcome column as an array literal", () => {
  const db = useTestDatabase();

  const roundTrip = async (values: unknown[], type: string) => {
    const { rows } = await db.pool.query({
      text: `SELECT $1::${type}[] AS values`,
      values: [plainArrayLiteral(values) ?? values],
      types: ROW_TYPES,
    });
    return rows[0].values;
  };

  it("is taken for plain text and numbers, and reads back as node-postgres's own encoding does", async () => {
    expect(plainArrayLiteral(["a b", null, 'say "hi"', "back\\slash", "NULL", "", "é😀"])).toBe(
      '{"a b",null,"say \\"hi\\"","back\\\\slash","NULL","","é😀"}',
    );
    expect(await roundTrip(["a b", null, 'say "hi"', "back\\slash", "NULL", "", "é😀"], "text")).toEqual([
      "a b",
      null,
      'say "hi"',
      "back\\slash",
      "NULL",
      "",
      "é😀",
    ]);
    expect(await roundTrip([1, -2, 2147483647, null], "int4")).toEqual([1, -2, 2147483647, null]);
    // node-postgres reads an int8[] as text
    expect(await roundTrip([1, 9007199254740991, null], "int8")).toEqual(["1", "9007199254740991", null]);
    expect(await roundTrip([0.1, -1.5e-7, null], "float8")).toEqual([0.1, -1.5e-7, null]);
    expect(await roundTrip([true, false, null], "bool")).toEqual([true, false, null]);
  });

  it("is left to node-postgres for what JSON would write otherwise", async () => {
    expect(plainArrayLiteral(["new\nline"])).toBeUndefined();
    expect(plainArrayLiteral([Number.NaN])).toBeUndefined();
    expect(plainArrayLiteral([{ a: 1 }])).toBeUndefined();
    expect(await roundTrip(["new\nline", "\u0001"], "text")).toEqual(["new\nline", "\u0001"]);
    expect(await roundTrip([Number.NaN, Number.POSITIVE_INFINITY], "float8")).toEqual([
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]);
  });

  it("reads back as written, for any text", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(awkwardText, { nil: null }), { maxLength: 20 }), async (values) => {
        expect(await roundTrip(values, "text")).toEqual(values);
      }),
      { numRuns: 200 },
    );
  });
});
