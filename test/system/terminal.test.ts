import { chooseLogOutput } from "../../src/base/logger";
import { parseConfig } from "../../src/config/config";
import { useTestDatabase } from "../support/database";
import { type Finished, logLines, MAIN, ROOT, run } from "../support/processes";

/** Runs a command in a real pseudo-terminal (util-linux `script`): its stdout and stderr are both the terminal. */
function inTerminal(args: string[], env: Record<string, string | undefined>): Promise<Finished> {
  const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
  return run("script", ["-qfec", args.map(quote).join(" "), "/dev/null"], env);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is looked for
const ESCAPE = /\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+/g;

/**
 * What a person sees: the output replayed the way a terminal draws it. A carriage return goes
 * back to the start of the line, ESC[K clears the rest of it, colours take no room.
 */
function screen(output: string): string[] {
  const lines = [""];
  let column = 0;
  for (const [token] of output.matchAll(ESCAPE)) {
    const row = lines.length - 1;
    const line = lines[row] as string;
    if (token === "\r") column = 0;
    else if (token === "\n") {
      lines.push("");
      column = 0;
    } else if (token.endsWith("[K") && token.startsWith("\x1b")) lines[row] = line.slice(0, column);
    else if (!token.startsWith("\x1b")) {
      lines[row] = line.padEnd(column).slice(0, column) + token + line.slice(column + token.length);
      column += token.length;
    }
  }
  return lines.filter((text) => text.trim() !== "");
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: a colour is an escape sequence
const COLOUR = /\x1b\[\d+m/;
const LOG_LINE = /^\[\d\d:\d\d:\d\d\] (INFO|WARN|ERROR|DEBUG|FATAL): /;
const BAR = /^(generate|import|process)\s+\[[#-]{30}\]\s+\d+%/;

/** Lines that are neither a whole log line nor a whole bar, such as a bar with a log line run into it. */
function mixedLines(lines: string[]): string[] {
  const hasBar = (line: string) => /\[[#-]{30}\]/.test(line);
  const hasLevel = (line: string) => /\b(INFO|WARN|ERROR|DEBUG|FATAL): /.test(line);
  return lines.filter((line) => (LOG_LINE.test(line) ? hasBar(line) : !BAR.test(line) || hasLevel(line)));
}

describe("which log format, and whether in colour", () => {
  const choose = (env: Record<string, string>, terminal: boolean) => chooseLogOutput(parseConfig(env), terminal);

  it("is readable and coloured on a terminal, JSON lines elsewhere", () => {
    expect(choose({}, true)).toEqual({ format: "pretty", colorize: true });
    expect(choose({}, false)).toEqual({ format: "json", colorize: false });
  });

  it("follows LOG_FORMAT, and has colours only on a terminal without NO_COLOR", () => {
    expect(choose({ LOG_FORMAT: "json" }, true)).toEqual({ format: "json", colorize: false });
    expect(choose({ LOG_FORMAT: "pretty" }, false)).toEqual({ format: "pretty", colorize: false });
    expect(choose({ NO_COLOR: "1" }, true)).toEqual({ format: "pretty", colorize: false });
  });
});

describe("log lines as written", () => {
  const SECRET = "Hunter2-secret";
  const logSomething = [
    process.execPath,
    "-e",
    `const logger = require(${JSON.stringify(`${ROOT}/dist/src/config/context.js`)}).getLogger();
     logger.info({ target: "postgres://app:${SECRET}@db/app" }, "connecting to postgres://app:${SECRET}@db/app");
     logger.warn({ attempt: 2 }, "trying again");`,
  ];

  it("are JSON with LOG_FORMAT=json, even on a terminal", async () => {
    const result = await inTerminal(logSomething, { LOG_FORMAT: "json" });
    expect(result.code).toBe(0);
    const lines = screen(result.stdout);
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual([
      "connecting to postgres://app:***@db/app",
      "trying again",
    ]);
    expect(result.stdout).not.toContain(SECRET);
  });

  it("are readable text, not JSON, with LOG_FORMAT=pretty, and secrets are redacted the same", async () => {
    const result = await run(logSomething[0] as string, logSomething.slice(1), { LOG_FORMAT: "pretty" });
    expect(result.code).toBe(0);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(LOG_LINE);
    expect(lines[0]).toContain('INFO: connecting to postgres://app:***@db/app {"target":"postgres://app:***@db/app"}');
    expect(lines[1]).toMatch(/WARN: trying again {"attempt":2}$/);
    expect(logLines(result.stderr)).toEqual([]);
    expect(result.stderr).not.toContain(SECRET);
    // not a terminal: no colours
    expect(result.stderr).not.toMatch(COLOUR);
  });

  it("are coloured text on a terminal, and plain with NO_COLOR", async () => {
    const coloured = await inTerminal(logSomething, {});
    expect(coloured.stdout).toMatch(COLOUR);
    expect(screen(coloured.stdout)).toEqual([expect.stringMatching(LOG_LINE), expect.stringMatching(LOG_LINE)]);

    const plain = await inTerminal(logSomething, { NO_COLOR: "1" });
    expect(plain.stdout).not.toContain("\x1b[");
    expect(screen(plain.stdout)).toEqual(screen(coloured.stdout).map(() => expect.stringMatching(LOG_LINE)));
  });
});

describe("a pooled connection the database ends", () => {
  const db = useTestDatabase({ migrated: false, each: true });

  it("is one warning with the database's error, not the pool's client", async () => {
    const script = `const { createPool } = require(${JSON.stringify(`${ROOT}/dist/src/db/pool.js`)});
     const logger = require(${JSON.stringify(`${ROOT}/dist/src/config/context.js`)}).getLogger();
     const pool = createPool({ url: process.env.DATABASE_URL, max: 2, appName: "ended-by-the-database", logger });
     pool.on("error", () => pool.end());
     const { Client } = require("pg");
     const other = new Client({ connectionString: process.env.DATABASE_URL });
     pool.query("SELECT 1")
       .then(() => other.connect())
       .then(() => other.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ended-by-the-database'"))
       .then(() => other.end());`;
    const result = await run(process.execPath, ["-e", script], { DATABASE_URL: db.url, LOG_FORMAT: "json" });
    expect(result.code).toBe(0);
    const warnings = logLines(result.stderr) as { msg: string; err: { code: string } }[];
    expect(warnings.map((line) => [line.msg, line.err.code])).toEqual([["database connection failed", "57P01"]]);
    expect(result.stderr).not.toContain("connectionParameters");
    expect(result.stderr.length).toBeLessThan(2_000);
  });
});

describe("npm start on a terminal", () => {
  const db = useTestDatabase({ migrated: false, each: true });

  const start = (args: string[], env: Record<string, string> = {}) =>
    inTerminal([process.execPath, MAIN, "--rows", "2000", ...args], { DATABASE_URL: db.url, ...env });

  it("shows its phases, progress bars and a short summary, and no JSON", async () => {
    const result = await start([]);
    expect(result.code).toBe(0);
    const lines = screen(result.stdout);

    const messages = lines.filter((line) => LOG_LINE.test(line)).map((line) => line.replace(LOG_LINE, ""));
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^schema: \d+ migration\(s\) applied/),
        expect.stringMatching(/^generate: 2,000 users written/),
        expect.stringMatching(/^import: 2,000 rows imported/),
        expect.stringMatching(/^enqueue: batch run \d+ started, 2,000 rows/),
      ]),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^generate \[#{30}\] 100% 2,000\/2,000 rows/));
    expect(lines).toContainEqual(expect.stringMatching(/^process {2}\[#{30}\] 100% 2,000\/2,000 rows/));
    const summary = lines.slice(-3);
    expect(summary[0]).toMatch(/^batch run \d+ "users-batch": completed$/);
    expect(summary[1]).toBe("  rows: 2,000 completed, 0 failed, of 2,000");
    expect(summary[2]).toMatch(
      /^ {2}time: [\d.]+ s processing \([\d,]+ rows\/s\); generate [\d.]+ s, import [\d.]+ s$/,
    );
    // above the summary, whole log lines and finished bars only: no JSON, nothing torn
    expect(mixedLines(lines.slice(0, -3))).toEqual([]);
    expect(lines.filter((line) => line.startsWith("{"))).toEqual([]);
    // the per-job and per-chunk chatter, and the missing crontab, stay out of sight
    expect(result.stdout).not.toMatch(/Completed task|chunk processed|crontab/);
  });

  it("keeps the bar whole when log lines come while it is drawn", async () => {
    const result = await start([], { LOG_LEVEL: "debug", NO_COLOR: "1" });
    expect(result.code).toBe(0);
    const lines = screen(result.stdout);
    expect(lines).toContainEqual(expect.stringMatching(/DEBUG: Completed task \d+ \(batch_chunk/));
    // each bar was cleared before a log line and drawn again below it: one finished bar per step stays
    expect(lines.filter((line) => BAR.test(line))).toHaveLength(3);
    expect(mixedLines(lines.slice(0, -3))).toEqual([]);
  });

  it("ends with the JSON summary as its last line with --json", async () => {
    const result = await start(["--json"]);
    expect(result.code).toBe(0);
    const last = screen(result.stdout).at(-1) as string;
    expect(JSON.parse(last)).toMatchObject({ batch: "users-batch", status: "completed", total: 2000, completed: 2000 });
  });
});
