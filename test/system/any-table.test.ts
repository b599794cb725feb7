import { column, defineJob, type JobDefinition } from "#pg-batch";
import { JOBS_DIR } from "../../src/base/paths";
import { parseConfig } from "../../src/config/config";
import { useCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
import { loadCatalog } from "../../src/jobs/catalog";
import { checkJobAgainstDatabase } from "../../src/jobs/catalog-check";
import { stateMigrationSql } from "../../src/jobs/state-migration";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { insertUsers, useTestDatabase } from "../support/database";
import { runDueJobs } from "../support/one-job";
import { SEED_CLI, start } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/**
 * Jobs over tables nobody in the project wrote, with the data real tables hold: results that do
 * not fit their columns, keys beyond 2^53 and at both ends of BIGINT, keys far apart, keys that
 * may be NULL. Each row ends with what its own result and key call for; no row fails another.
 */

const db = useTestDatabase({ each: true });
afterEach(() => useCatalog(loadCatalog(JOBS_DIR).jobs));

/** Gives the job's table its state columns, makes the job this process's, and runs it to its end in-process. */
async function runToEnd(job: JobDefinition, env: Record<string, string> = {}) {
  await db.pool.query(stateMigrationSql(job));
  useCatalog([job]);
  const settings = runSettings(parseConfig({ MAX_ATTEMPTS: "1", RETRY_DELAY_S: "0", ...env }), job);
  await startRun(withPool(db.pool), job, job.name, settings, "test", "now");
  const ran = await runDueJobs(db.pool);
  return { run: await runByName(db.pool, job.name), ran };
}

async function check(job: JobDefinition): Promise<string[]> {
  const client = await db.pool.connect();
  try {
    return await checkJobAgainstDatabase(client, job);
  } finally {
    client.release();
  }
}

describe("a result that does not fit its column", () => {
  const job = defineJob({
    name: "echo",
    table: "results",
    key: "id",
    // the result each row's record returns, as it is
    reads: { want: column.jsonb() },
    writes: {
      n: column.integer().nullable(),
      amount: column.numeric().nullable(),
      doc: column.jsonb().nullable(),
      note: column.text().nullable(),
      dueOn: column.date("due_on").nullable(),
    },
    state: "echo",
    async process(record) {
      return record.want as never;
    },
  });

  it("fails its own row, saying which property, column and why, and every other row is written", async () => {
    const given: [number, unknown][] = [
      [1, { n: 1, amount: "1.50", doc: ["a", "b"], note: "ok" }],
      [2, { n: 2, amount: "2", doc: [], note: "x" }],
      [3, { n: 3, amount: "-3e2", doc: "hello", note: "y" }],
      [4, { n: 3000000000, amount: "4", doc: null, note: "4" }],
      [5, { n: 1.5, amount: "5", doc: null, note: "5" }],
      [6, { n: 6, amount: "12abc", doc: null, note: "6" }],
      [7, { n: null, amount: null, doc: { a: { b: [1, null, true, "x\ty"] } }, note: null }],
      [8, { n: 8, amount: "8", doc: null, note: "forbidden" }],
      [9, { nope: 1 }],
      [10, { n: 10, amount: "10", doc: 1, note: "z" }],
      [11, [1, 2]],
      // values the column kinds cannot tell from good ones: the database refuses them
      [12, { n: 12, amount: "12", doc: null, note: "12", dueOn: "2024-02-30" }],
      [13, { n: 13, amount: "13", doc: null, note: "far too long for it" }],
      [14, { n: 14, amount: "14", doc: null, note: "fine", dueOn: "2024-02-29" }],
    ];
    // a result names dueOn, null where the row gives none, but for the one that lacks n too
    const wants = given.map(([id, want]): [number, unknown] => [
      id,
      typeof want === "object" && want !== null && !Array.isArray(want) && !("nope" in want)
        ? { dueOn: null, ...want }
        : want,
    ]);
    await db.pool.query(
      `CREATE TABLE results (id INTEGER PRIMARY KEY, want JSONB NOT NULL, n INTEGER, amount NUMERIC, doc JSONB,
                             note VARCHAR(12) CHECK (note <> 'forbidden'), due_on DATE)`,
    );
    await db.pool.query(
      `INSERT INTO results (id, want) SELECT id, want FROM jsonb_to_recordset($1) AS w(id int, want jsonb)`,
      [JSON.stringify(wants.map(([id, want]) => ({ id, want })))],
    );
    // slices of every row: one bad result among them must not fail the others
    const { run } = await runToEnd(job, { CHUNK_SIZE: "100" });
    expect(run).toMatchObject({ status: "completed", total_records: 14, processed_records: 6, failed_records: 8 });

    const { rows } = await db.pool.query(
      `SELECT id, echo_status AS status, echo_error AS error, n, amount, doc, note, due_on::text AS "dueOn"
         FROM results ORDER BY id`,
    );
    const written = (id: number, n: unknown, amount: unknown, doc: unknown, note: unknown, dueOn: unknown = null) => ({
      id,
      status: "completed",
      error: null,
      n,
      amount,
      doc,
      note,
      dueOn,
    });
    const failed = (id: number, error: string) => ({
      id,
      status: "failed",
      error,
      n: null,
      amount: null,
      doc: null,
      note: null,
      dueOn: null,
    });
    expect(rows).toEqual([
      written(1, 1, "1.50", ["a", "b"], "ok"),
      written(2, 2, "2", [], "x"),
      written(3, 3, "-300", "hello", "y"),
      failed(4, "result n: 3000000000 is out of range for integer"),
      failed(5, "result n: 1.5 is not a whole number"),
      failed(6, 'result amount: "12abc" is not a number\'s text'),
      written(7, null, null, { a: { b: [1, null, true, "x\ty"] } }, null),
      failed(
        8,
        'the result could not be written: new row for relation "results" violates check constraint "results_note_check"',
      ),
      failed(9, "result n is missing from the job's result"),
      written(10, 10, "10", 1, "z"),
      failed(11, "the job returned [1,2], not an object with n, amount, doc, note, dueOn"),
      failed(12, 'result dueOn (column due_on): date/time field value out of range: "2024-02-30"'),
      failed(13, "the result could not be written: value too long for type character varying(12)"),
      written(14, 14, "14", null, "fine", "2024-02-29"),
    ]);
    // the run's errors are the rows' own
    const { rows: errors } = await db.pool.query("SELECT message FROM batch_errors");
    expect(errors.map((e) => e.message).sort()).toEqual(rows.flatMap((row) => (row.error ? [row.error] : [])).sort());
  });

  it("is refused by the check when a column the job may write NULL to is NOT NULL", async () => {
    await db.pool.query(
      "CREATE TABLE results (id INTEGER PRIMARY KEY, want JSONB NOT NULL, n INTEGER NOT NULL, amount NUMERIC, doc JSONB, note TEXT, due_on DATE)",
    );
    await db.pool.query(stateMigrationSql(job));
    expect(await check(job)).toEqual([
      "job echo: public.results.n is NOT NULL, and the job may write NULL to it (column.integer().nullable())",
    ]);
  });
});

describe("a timestamptz", () => {
  it("keeps its microseconds through a job that writes it back, and a Date of its own writes its milliseconds", async () => {
    await db.pool.query(`
      CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMPTZ NOT NULL, at_copy TIMESTAMPTZ, at_later TIMESTAMPTZ);
      INSERT INTO events (id, at) VALUES (1, '2024-02-29 23:59:59.123456+00'), (2, '0044-03-15 12:00:00.000001+00 BC'),
                                         (3, '1970-01-01 00:00:00+00')`);
    const job = defineJob({
      name: "instants",
      table: "events",
      key: "id",
      reads: { at: column.timestamptz() },
      writes: { atCopy: column.timestamptz("at_copy"), atLater: column.timestamptz("at_later") },
      state: "instants",
      async process(record) {
        return { atCopy: record.at, atLater: new Date(record.at.getTime() + 1) };
      },
    });
    const { run } = await runToEnd(job);
    expect(run.status).toBe("completed");
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE at_copy = at)::int AS kept,
              count(*) FILTER (WHERE at_later = date_trunc('milliseconds', at) + interval '1 millisecond')::int AS later
         FROM events`,
    );
    expect(rows[0]).toEqual({ kept: 3, later: 3 });
  });
});

describe("keys", () => {
  /** Records the key each record arrives with, as text, in the row itself. */
  const keyJob = <K extends "bigint" | "string" | "number">(name: string, table: string, keyType: K) =>
    defineJob({
      name,
      table,
      key: "id",
      keyType,
      reads: { label: column.text() },
      writes: { seen: column.text() },
      state: "keys",
      async process(record) {
        return { seen: `${typeof record.id} ${String(record.id)}` };
      },
    });

  const INT8_ENDS = ["-9223372036854775808", "-9223372036854775807", "9223372036854775806", "9223372036854775807"];
  /** Contiguous keys across 2^53, where numbers stop being exact, and the two rows. */
  const PAST_2_53 = Array.from({ length: 16 }, (_, i) => String(9007199254740985n + BigInt(i)));

  it("arrive exact, over BIGINT's whole range: every row processed once, none skipped", async () => {
    await db.pool.query("CREATE TABLE big (id BIGINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT)");
    const keys = [...INT8_ENDS, "-1", "0", "1", ...PAST_2_53];
    await db.pool.query("INSERT INTO big (id, label) SELECT k, 'row ' || k FROM unnest($1::int8[]) AS k", [keys]);
    const job = keyJob("big-keys", "big", "bigint");
    await db.pool.query(stateMigrationSql(job));
    // 9007199254740992 already done: the run takes 9007199254740993 after it, and only it
    await db.pool.query("UPDATE big SET keys_status = 'completed' WHERE id = 9007199254740992");
    // chunks of three rows: chunk bounds and slices fall between keys numbers cannot tell apart
    const { run } = await runToEnd(job, { CHUNK_SIZE: "3" });
    const expected = keys.filter((key) => key !== "9007199254740992");
    expect(run).toMatchObject({
      status: "completed",
      total_records: expected.length,
      processed_records: expected.length,
    });
    const { rows } = await db.pool.query(
      "SELECT id::text, keys_status AS status, keys_attempts AS attempts, seen FROM big ORDER BY id",
    );
    for (const row of rows) {
      if (row.id === "9007199254740992") expect(row).toMatchObject({ status: "completed", attempts: 0, seen: null });
      else expect(row).toEqual({ id: row.id, status: "completed", attempts: 1, seen: `bigint ${row.id}` });
    }
  });

  it("arrive as their text with keyType string, and as numbers over SMALLINT's and INTEGER's ranges", async () => {
    await db.pool.query(`
      CREATE TABLE texts (id BIGINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO texts (id, label) VALUES (-9223372036854775808, 'a'), (9223372036854775807, 'b');
      CREATE TABLE small (id SMALLINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO small (id, label) VALUES (-32768, 'a'), (-1, 'b'), (32767, 'c');
      CREATE TABLE ints (id INTEGER PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO ints (id, label) VALUES (-2147483648, 'a'), (2147483647, 'b')`);
    for (const [job, table] of [
      [keyJob("text-keys", "texts", "string"), "texts"],
      [keyJob("small-keys", "small", "number"), "small"],
      [keyJob("int-keys", "ints", "number"), "ints"],
    ] as const) {
      const { run } = await runToEnd(job);
      expect(run.status).toBe("completed");
      const { rows } = await db.pool.query(`SELECT id::text, seen FROM ${table} ORDER BY id`);
      const type = table === "texts" ? "string" : "number";
      expect(rows).toEqual(rows.map((row) => ({ id: row.id, seen: `${type} ${row.id}` })));
    }
  });

  it("beyond 2^53 are refused for a job whose keys arrive as numbers, naming keyType", async () => {
    await db.pool.query(`
      CREATE TABLE big (id BIGINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO big (id, label) VALUES (1, 'a'), (9007199254740993, 'b')`);
    const job = keyJob("number-keys", "big", "number");
    await db.pool.query(stateMigrationSql(job));
    expect(await check(job)).toEqual([
      'job number-keys: key public.big.id holds 9007199254740993, beyond 2^53, where a number is no longer exact: declare keyType "bigint" (or "string")',
    ]);
  });

  it("that may be NULL are refused: such a row lies in no chunk", async () => {
    await db.pool.query("CREATE TABLE nullable (id BIGINT UNIQUE, label TEXT NOT NULL, seen TEXT)");
    const job = keyJob("nullable-keys", "nullable", "number");
    await db.pool.query(stateMigrationSql(job));
    expect(await check(job)).toEqual([
      "job nullable-keys: key public.nullable.id may be NULL, and a row whose key is NULL lies in no chunk: make it NOT NULL",
    ]);
  });

  it("far apart are planned in proportion to the rows, in the first round and the retry round alike", async () => {
    await db.pool.query(`
      CREATE TABLE sparse (id BIGINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO sparse (id, label) VALUES (-9223372036854775808, 'a'), (1, 'b'), (1000000000000, 'c'),
                                            (9223372036854775807, 'd')`);
    // every row fails its first attempt: the retry round plans over the first round's chunks
    const job = defineJob({
      name: "sparse-keys",
      table: "sparse",
      key: "id",
      keyType: "bigint",
      reads: { label: column.text() },
      writes: { seen: column.text() },
      state: "keys",
      async process(record, ctx) {
        if (ctx.attempt === 1) throw new Error("first attempt");
        return { seen: String(record.id) };
      },
    });
    // a plan that walked the key span (18e18 keys) would end only at its statement timeout
    const { run } = await runToEnd(job, { MAX_ATTEMPTS: "2", CHUNK_SIZE: "2", PLAN_TIMEOUT_S: "30" });
    expect(run).toMatchObject({ status: "completed", round: 1, processed_records: 4, failed_records: 0 });
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM sparse WHERE seen = id::text");
    expect(rows[0].n).toBe(4);
  });

  it("crowded into a corner of BIGINT's span are sampled into chunks of about their size, every row in one", async () => {
    // 6,000 keys side by side, and two at BIGINT's ends: a span of 2^64 keys, nearly all empty
    await db.pool.query(`
      CREATE TABLE crowded (id BIGINT PRIMARY KEY, label TEXT NOT NULL, seen TEXT);
      INSERT INTO crowded (id, label) SELECT g, 'x' FROM generate_series(1, 6000) g;
      INSERT INTO crowded (id, label) VALUES (-9223372036854775808, 'a'), (9223372036854775807, 'b');
      ANALYZE crowded`);
    const job = keyJob("crowded-keys", "crowded", "bigint");
    await db.pool.query(stateMigrationSql(job));
    useCatalog([job]);
    const pool = withPool(db.pool);
    const settings = runSettings(parseConfig({ CHUNK_SIZE: "500", MAX_ATTEMPTS: "1" }), job);
    const { run } = await startRun(pool, job, "crowded", settings, "test");
    // sampled as a table of millions of rows would be, its sample every block: the cuts fall where its keys do
    const { result } = await planRun(pool, run.id, "test", { sampling: { fromRows: 0, sampleRows: 10_000 } });
    expect(result).toMatchObject({ samplePercent: expect.any(Number) });
    const { rows: chunks } = await db.pool.query(
      `SELECT c.first_id::text, c.last_id::text,
              (SELECT count(*)::int FROM crowded t WHERE t.id BETWEEN c.first_id AND c.last_id) AS rows
         FROM batch_chunks c WHERE c.run_id = $1 ORDER BY c.first_id`,
      [run.id],
    );
    // the span tiled without a gap, from one end of BIGINT to the other
    expect(chunks[0]?.first_id).toBe("-9223372036854775808");
    expect(chunks.at(-1)?.last_id).toBe("9223372036854775807");
    for (let i = 1; i < chunks.length; i++) {
      expect(BigInt(chunks[i].first_id)).toBe(BigInt(chunks[i - 1].last_id) + 1n);
    }
    // the crowd cut where the sample's keys fall: no chunk holds more than a chunk's rows, give or take
    expect(Math.max(...chunks.map((chunk) => chunk.rows))).toBeLessThan(1000);
    await runDueJobs(db.pool);
    expect(await runByName(db.pool, "crowded")).toMatchObject({ status: "completed", processed_records: 6002 });
  });
});

describe("a run's planning", () => {
  /** The backends of a command run under POD_NAME `pod`, and what each waits for. */
  const backendsOf = async (pod: string) =>
    (
      await db.pool.query("SELECT wait_event_type AS waiting FROM pg_stat_activity WHERE application_name LIKE $1", [
        `%${pod}%`,
      ])
    ).rows as { waiting: string | null }[];

  /** Starts `seed enqueue` while the users table is locked; `release` ends the lock. */
  async function enqueueBehindLock(env: Record<string, string>) {
    await insertUsers(db.pool, 10);
    const holder = await db.pool.connect();
    await holder.query("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    const enqueue = start(process.execPath, [SEED_CLI, "enqueue"], { DATABASE_URL: db.url, ...env });
    const release = async () => {
      await holder.query("ROLLBACK");
      holder.release();
    };
    return { enqueue, pod: env.POD_NAME as string, release };
  }

  const noBackendOf = (pod: string) =>
    waitFor(`the backends of ${pod} to end`, async () => (await backendsOf(pod)).length === 0, 20_000);

  it("killed while it waits leaves no backend behind", async () => {
    const { enqueue, pod, release } = await enqueueBehindLock({ POD_NAME: "killed-planner" });
    try {
      await waitFor("the enqueue to wait for the lock", async () =>
        (await backendsOf(pod)).some((backend) => backend.waiting === "Lock"),
      );
      enqueue.child.kill("SIGKILL");
      await enqueue.exited;
      // without a check on its client, the backend would wait for the lock as long as it is held
      await noBackendOf(pod);
    } finally {
      await release();
    }
  });

  it("ends at PLAN_TIMEOUT_S with one line, and leaves nothing behind", async () => {
    const { enqueue, pod, release } = await enqueueBehindLock({ POD_NAME: "slow-planner", PLAN_TIMEOUT_S: "2" });
    try {
      const ended = await enqueue.exited;
      expect(ended.code).toBe(1);
      expect(ended.stderr.trim().split("\n")).toEqual([
        'error: starting batch run "users-batch" took longer than PLAN_TIMEOUT_S (2s), and nothing was started: ' +
          "is public.users locked? (canceling statement due to statement timeout)",
      ]);
      await noBackendOf(pod);
      const { rows } = await db.pool.query("SELECT count(*)::int AS runs FROM batch_jobs WHERE kind = 'process'");
      expect(rows[0].runs).toBe(0);
    } finally {
      await release();
    }
  });
});
