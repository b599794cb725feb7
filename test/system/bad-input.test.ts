import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CSV_HEADER } from "../../seed/user-rows";
import { useTestDatabase } from "../support/database";
import { batch, MAIN, run, seed, startWorker, status } from "../support/processes";

const GOOD_ROW = (id: number) => `${id},User ${id},user.${id}@example.com,30,50000,2025-06-01 12:00:00,pending,`;

describe("bad CSV input", () => {
  const db = useTestDatabase();
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "bad-csv-"));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  /** Text files get the header and hold one bad line (line 3) after a good one; byte files are taken as they are. */
  const cases: [string, string | Buffer, RegExp][] = [
    [
      "missing-column.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,30,50000,2025-06-01 12:00:00,pending`,
      /:3: missing data for column "batch_id"/,
    ],
    ["extra-column.csv", `${GOOD_ROW(1)}\n${GOOD_ROW(2)},extra`, /:3: extra data after last expected column/],
    [
      "open-quote.csv",
      `${GOOD_ROW(1)}\n2,"Two,two@example.com,30,50000,2025-06-01 12:00:00,pending,`,
      /unterminated CSV quoted field/,
    ],
    [
      "not-a-number.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,thirty,50000,2025-06-01 12:00:00,pending,`,
      /:3: invalid input syntax for type integer: "thirty" \(column age\)/,
    ],
    [
      "bad-date.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,30,50000,yesterday-ish,pending,`,
      /:3: invalid input syntax for type timestamp: "yesterday-ish" \(column created_at\)/,
    ],
    [
      "bad-status.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,30,50000,2025-06-01 12:00:00,done,`,
      /:3: batch_status must be pending, completed, failed or cancelled \(check users_batch_status_check\)/,
    ],
    [
      "processing-status.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,30,50000,2025-06-01 12:00:00,processing,`,
      /:3: batch_status must be pending, completed, failed or cancelled \(check users_batch_status_check\)/,
    ],
    [
      "old-age.csv",
      `${GOOD_ROW(1)}\n2,Two,two@example.com,151,50000,2025-06-01 12:00:00,pending,`,
      /:3: value out of range \(check users_age_check\)/,
    ],
    [
      "duplicate-email.csv",
      `${GOOD_ROW(1)}\n2,Two,user.1@example.com,30,50000,2025-06-01 12:00:00,pending,`,
      /:3: duplicate value, \(email\)=\(user\.1@example\.com\) already exists/,
    ],
    [
      "empty-email.csv",
      `${GOOD_ROW(1)}\n2,Two,"",30,50000,2025-06-01 12:00:00,pending,`,
      /:3: value out of range \(check users_email_check\)/,
    ],
    [
      "null-email.csv",
      `${GOOD_ROW(1)}\n2,Two,,30,50000,2025-06-01 12:00:00,pending,`,
      /:3: null value in column "email"/,
    ],
    [
      "latin1.csv",
      Buffer.concat([
        Buffer.from(`${CSV_HEADER}${GOOD_ROW(1)}\n2,Ren`),
        Buffer.from([0xe9]),
        Buffer.from(",two@example.com,30,50000,2025-06-01 12:00:00,pending,\n"),
      ]),
      /:3: invalid byte sequence for encoding "UTF8": 0xe9/,
    ],
    ["empty.csv", "", /empty\.csv: the file is empty/],
    ["not-csv.csv", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00]), /not-csv\.csv:1: /],
    ["short-header.csv", Buffer.from("id,name\n1,Ann\n"), /short-header\.csv:1: wrong number of fields in header line/],
    [
      "wrong-header.csv",
      Buffer.from(
        "user_id,name,email,age,salary,created_at,batch_status,batch_id\n1,Ann,a@example.com,1,1,,pending,\n",
      ),
      /wrong-header\.csv:1: column name mismatch in header line field 1: got "user_id", expected "id"/,
    ],
  ];

  it.each(cases)("refuses %s with its file and line, importing nothing of it", async (name, body, expected) => {
    const caseDir = path.join(dir, name.replace(/\.csv$/, ""));
    await fs.mkdir(caseDir);
    const content = typeof body === "string" ? (body === "" ? "" : `${CSV_HEADER}${body}\n`) : body;
    await fs.writeFile(path.join(caseDir, name), content);
    const before = await db.pool.query("SELECT count(*)::int AS n FROM users");
    const result = await seed(["import", "--dir", caseDir], { DATABASE_URL: db.url });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`${name.replace(".", "\\.")}`));
    expect(JSON.parse(result.stdout).failed[0]).toMatch(expected);
    const after = await db.pool.query("SELECT count(*)::int AS n FROM users");
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM imported_files");
    expect(rows[0].n).toBe(0);
  });
});

describe("bad arguments and names", () => {
  const db = useTestDatabase({ users: 50 });

  it.each([
    [["import", "--dir"], "Not enough arguments following: dir"],
    [["import", "--concurrency", "0"], "--concurrency must be a whole number of at least 1"],
    [["enqueue", "--batch-name", ""], "--batch-name must be 1 to 255 characters"],
    [["enqueue", "--batch-name", "x".repeat(256)], "--batch-name must be 1 to 255 characters"],
    [["generate", "--rows", "1.5"], "--rows must be a whole number of at least 1"],
    [["generate", "--bogus"], "Unknown argument: bogus"],
  ])("seed %j is refused with status 2 and changes nothing", async (args, message) => {
    const result = await seed(args, { DATABASE_URL: db.url });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs");
    expect(rows[0].n).toBe(0);
  });

  it.each([
    [["pause"], 2],
    [["explode", "x"], 2],
    [["pause", "unknown"], 1],
  ])("batch %j is refused", async (args, code) => {
    expect((await batch(args, { DATABASE_URL: db.url })).code).toBe(code);
  });

  // 21 commands one after another, each a node process: minutes on a loaded machine
  it("treats hostile names as data in every command", async () => {
    const names = [`'; DROP TABLE users; --`, `"quoted" \\ back`, "%_ wildcard", "ünïcode ✓", "1 OR 1=1"];
    for (const name of names) {
      expect((await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url })).code).toBe(0);
      const shown = JSON.parse((await status([name, "--json"], { DATABASE_URL: db.url })).stdout);
      expect(shown.name).toBe(name);
      const paused = await batch(["pause", name], { DATABASE_URL: db.url });
      expect(JSON.parse(paused.stdout)).toMatchObject({ batch: name, status: "paused" });
      // one active run at a time: the next name needs this one ended
      const cancelled = await batch(["cancel", name], { DATABASE_URL: db.url });
      expect(JSON.parse(cancelled.stdout)).toMatchObject({ batch: name, status: "cancelled" });
    }
    expect((await status(["%"], { DATABASE_URL: db.url })).code).toBe(1);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users");
    expect(rows[0].n).toBe(50);
  }, 300_000);

  it("prints names with their control characters escaped: no line broken, no screen cleared", async () => {
    const env = { DATABASE_URL: db.url };
    const name = "evil\nline \x1b[2J\x1b[Hcleared \x9b1m bold";
    const escaped = "evil\\nline \\u001b[2J\\u001b[Hcleared \\u009b1m bold";
    // any control character but the line breaks between lines
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
    expect((await seed(["enqueue", "--batch-name", name], env)).code).toBe(0);

    const overview = await status([], env);
    const report = await status([name], env);
    const history = await batch(["history", name], env);
    for (const shown of [overview, report, history]) {
      expect(shown.code).toBe(0);
      expect(shown.stdout).not.toMatch(raw);
      expect(shown.stdout).toContain(escaped);
    }
    // the overview is a header, a rule and one line per run
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs WHERE kind = 'process'");
    expect(overview.stdout.trim().split("\n")).toHaveLength(2 + rows[0].n);
    const json = await status([name, "--json"], env);
    expect(json.stdout).not.toMatch(raw);
    const { id, name: stored } = JSON.parse(json.stdout);
    expect(stored).toBe(name);
    expect(report.stdout.split("\n")[0]).toBe(`batch run ${id} "${escaped}" of job users: running (round 0)`);

    const unknown = await status([`${name} nope`], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).not.toMatch(raw);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);

    expect((await batch(["cancel", name], env)).code).toBe(0);
  });

  it("npm start refuses unknown options", async () => {
    const result = await run(process.execPath, [MAIN, "--rowz", "5"], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown argument: rowz");
  });
});

describe("jobs with a bad payload", () => {
  const db = useTestDatabase();

  it.each([
    ["batch_chunk", { run: "one", round: 0, chunk: 0 }, "invalid payload for batch_chunk"],
    ["batch_chunk", { run: 1, round: 0 }, "chunk: Invalid input"],
    ["batch_finish", { run: 1, round: 0, extra: true }, 'Unrecognized key: "extra"'],
    ["batch_plan", [], "invalid payload for batch_plan"],
    ["batch_chunk", { run: 999, round: 0, chunk: 0 }, "batch run 999 does not exist"],
  ])("%s %j fails for good at once, with a clear error, instead of retrying", async (task, payload, error) => {
    const key = `bad-${Math.random()}`;
    const { rows: before } = await db.pool.query("SELECT coalesce(max(id), 0) AS id FROM graphile_worker.jobs");
    await db.pool.query("SELECT graphile_worker.add_job($1, $2::json, job_key := $3, max_attempts := 10)", [
      task,
      JSON.stringify(payload),
      key,
    ]);
    const result = await startWorker(["--once"], { DATABASE_URL: db.url }).exited;
    expect(result.code).toBe(0);
    // the job that stays failed has given up its key
    const { rows } = await db.pool.query(
      "SELECT key, attempts, max_attempts, last_error, locked_at FROM graphile_worker.jobs WHERE id > $1",
      [before[0].id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key: null, attempts: 1, max_attempts: 1, locked_at: null });
    expect(rows[0].last_error).toContain(error);
  });
});
