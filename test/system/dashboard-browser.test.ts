import type { Browser, Page } from "puppeteer-core";
import { findChromium, launchBrowser } from "../support/browser";
import { type Dashboard, startDashboard } from "../support/dashboard";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { type Running, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/**
 * The dashboard in a real headless Chromium, during a real run worked by a real worker process:
 * progress moves without a reload, a hostile run name stays text, a scheduled job shows its
 * ticks, pause and resume work with the token once confirmed, a dry run from the start form
 * reports and writes nothing. With DASHBOARD_SCREENSHOT=path it saves the run page mid-run there
 * (docs/dashboard.png).
 */

const chromium = findChromium();
if ("reason" in chromium) console.warn(`skipping the dashboard's browser tests: ${chromium.reason}`);
const describeWithBrowser = "path" in chromium ? describe : describe.skip;

const HOSTILE_NAME = "<img src=x onerror=alert(1)>";
const LIVE_NAME = "nightly-live";
const TOKEN = "the-operators-token-0123456789";
const READ_TOKEN = "a-reader-of-row-errors-0123456789";
/** Slow enough to last well past the test's steps, on a busy machine too (about 800 rows/s). */
const LIVE_ROWS = 20_000;
const WORKER_ENV = { CHUNK_SIZE: "500", WORKERS: "2", ROW_CONCURRENCY: "4", PROCESS_DELAY_MS: "10" };
const STEP_MS = 30_000;

describeWithBrowser("the dashboard in a browser", () => {
  let db: TestDatabase;
  let dashboard: Dashboard;
  let browser: Browser;
  let page: Page;
  let worker: Running | undefined;
  let liveId: number;
  let hostileId: number;
  /** Dialogs other than the controls' confirmations: an alert here is an injected script. */
  const unexpectedDialogs: string[] = [];
  const pageProblems: string[] = [];

  beforeAll(async () => {
    db = await createMigratedDatabase();
    // a finished run under a name that is markup, then the live one
    await insertUsers(db.pool, 200);
    await seed(["enqueue", "--batch-name", HOSTILE_NAME], { DATABASE_URL: db.url });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url }).exited).code).toBe(0);
    hostileId = (await runByName(db.pool, HOSTILE_NAME)).id;
    // a paused schedule of the job, whose older tick started the run named as markup
    await db.pool.query(
      `INSERT INTO batch_schedules (job, cron, time_zone, overlap, catch_up, last_tick, paused, paused_at, paused_by)
       VALUES ('users', '0 3 * * *', 'Europe/Paris', 'skip', 'latest', '2026-12-06T02:00Z', true, now(), 'ops');
       INSERT INTO batch_schedule_ticks (job, tick, outcome, run_id, decided_by)
       VALUES ('users', '2026-12-05T02:00Z', 'started', ${hostileId}, 'pod-a'),
              ('users', '2026-12-06T02:00Z', 'skipped-overlap', NULL, 'pod-a')`,
    );
    await insertUsers(db.pool, LIVE_ROWS, 201);
    await seed(["enqueue", "--batch-name", LIVE_NAME], { DATABASE_URL: db.url, ...WORKER_ENV });
    liveId = (await runByName(db.pool, LIVE_NAME)).id;

    [dashboard, browser] = await Promise.all([
      startDashboard({ DATABASE_URL: db.url, DASHBOARD_TOKEN: TOKEN }),
      launchBrowser((chromium as { path: string }).path),
    ]);
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1000 });
    page.on("dialog", (dialog) => {
      if (dialog.type() === "confirm") return void dialog.accept();
      unexpectedDialogs.push(`${dialog.type()}: ${dialog.message()}`);
      return void dialog.dismiss();
    });
    page.on("pageerror", (error) => pageProblems.push(`page error: ${(error as Error).message}`));
    page.on("console", (message) => {
      if (message.type() === "error") pageProblems.push(`console: ${message.text()}`);
    });
    worker = startWorker([], { DATABASE_URL: db.url, ...WORKER_ENV, POD_NAME: "worker-live" });
  }, 60_000);

  afterAll(async () => {
    worker?.child.kill("SIGTERM");
    await worker?.exited;
    await browser?.close();
    await dashboard?.stop();
    await db?.drop();
  });

  const text = (selector: string) => page.$eval(selector, (node) => node.textContent ?? "");

  it("lists the runs, the live one first, and shows a name that is markup as text", async () => {
    await page.goto(`${dashboard.url}/`);
    await page.waitForFunction(() => document.querySelectorAll("#runs tbody tr").length === 2, { timeout: STEP_MS });
    const names = await page.$$eval("#runs tbody a", (links) => links.map((link) => link.textContent));
    expect(names).toEqual([LIVE_NAME, HOSTILE_NAME]);
    expect(await page.$$eval("#runs img", (images) => images.length)).toBe(0);

    await page.goto(`${dashboard.url}/runs/${hostileId}`);
    await page.waitForFunction(() => document.getElementById("run-name")?.textContent, { timeout: STEP_MS });
    expect(await text("#run-name")).toBe(HOSTILE_NAME);
    expect(await page.title()).toBe(`pg-batch: ${HOSTILE_NAME}`);
    expect(await page.$$eval("main img", (images) => images.length)).toBe(0);
    expect(unexpectedDialogs).toEqual([]);
  });

  it("shows a scheduled job: its cron, next tick, paused state and last ticks, their runs linked", async () => {
    await page.goto(`${dashboard.url}/`);
    await page.waitForFunction(() => document.querySelectorAll("#schedules tbody tr").length === 1, {
      timeout: STEP_MS,
    });
    const cells = await page.$$eval("#schedules tbody td", (tds) => tds.map((td) => td.textContent));
    expect(cells).toEqual([
      "users",
      "0 3 * * *",
      "Europe/Paris",
      "skip",
      "latest",
      "paused by ops",
      expect.stringMatching(/^\d{4}-\d\d-\d\d 03:00 \+0[12]:00$/),
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
      expect.stringMatching(/^[\d-]+ [\d:]+ skipped-overlap, [\d-]+ [\d:]+ <img src=x onerror=alert\(1\)>$/),
    ]);
    expect(await page.$$eval("#schedules a", (links) => links.map((link) => link.getAttribute("href")))).toEqual([
      `/runs/${hostileId}`,
    ]);
    expect(await page.$$eval("#schedules img", (images) => images.length)).toBe(0);
  });

  it("follows the live run without reloading: the percentage grows, the chart and workers fill in", async () => {
    await page.goto(`${dashboard.url}/runs/${liveId}`);
    // a mark that a reload would wipe
    await page.evaluate(() => {
      document.body.dataset.loadedOnce = "yes";
    });
    const progress = () => page.$eval("#progress", (bar) => (bar as HTMLProgressElement).value);
    await page.waitForFunction(() => (document.getElementById("progress") as HTMLProgressElement).value > 0, {
      timeout: STEP_MS,
      polling: 100,
    });
    const first = await progress();
    await page.waitForFunction(
      (before) => (document.getElementById("progress") as HTMLProgressElement).value > before,
      { timeout: STEP_MS, polling: 100 },
      first,
    );
    expect(await progress()).toBeGreaterThan(first);
    expect(await page.evaluate(() => document.body.dataset.loadedOnce)).toBe("yes");
    expect(await text("#run-name")).toBe(LIVE_NAME);

    await page.waitForFunction(() => document.getElementById("workers")?.textContent?.includes("worker-live"), {
      timeout: STEP_MS,
    });
    expect(await page.$$eval("#chart canvas", (canvases) => canvases.length)).toBe(1);
    expect(await text("#events")).toContain("planned");
    // the database agrees with the page, give or take the rows done since it was drawn
    const run = await runByName(db.pool, LIVE_NAME);
    expect(run.status).toBe("running");
    expect((100 * run.processed_records) / run.total_records).toBeGreaterThanOrEqual(first);

    const screenshot = process.env.DASHBOARD_SCREENSHOT;
    if (screenshot) {
      // once the chart has a few samples (one per 5 s) to draw
      await waitFor("a few samples", async () => {
        const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_samples WHERE run_id = $1", [
          liveId,
        ]);
        return rows[0].n >= 3;
      });
      await page.waitForFunction(() => document.getElementById("live")?.textContent?.startsWith("live"));
      await new Promise((resolve) => setTimeout(resolve, 1500)); // the next poll draws them
      await page.screenshot({ path: screenshot, clip: { x: 0, y: 0, width: 1280, height: 1180 } });
    }
  });

  it("pauses and resumes the run with the token, after a confirmation", async () => {
    await page.waitForSelector("#pause:not([disabled])", { timeout: STEP_MS });
    await page.type("#token", TOKEN);
    await page.click("#pause");
    await waitFor("the run to be paused", async () => (await runByName(db.pool, LIVE_NAME)).status === "paused");
    await page.waitForFunction(() => document.querySelector("#title .status")?.textContent === "paused", {
      timeout: STEP_MS,
    });
    expect(await text("#control-message")).toBe("Done: the run is paused.");

    await page.waitForSelector("#resume:not([disabled])", { timeout: STEP_MS });
    await page.click("#resume");
    await waitFor("the run to be resumed", async () => (await runByName(db.pool, LIVE_NAME)).status === "running");
    const resumedAt = (await runByName(db.pool, LIVE_NAME)).processed_records;
    await waitFor(
      "rows after the resume",
      async () => (await runByName(db.pool, LIVE_NAME)).processed_records > resumedAt,
    );

    const { rows } = await db.pool.query(
      "SELECT event FROM batch_events WHERE run_id = $1 AND step = 'control' ORDER BY id",
      [liveId],
    );
    expect(rows.map((row) => row.event)).toEqual(["paused", "resumed"]);
    expect(unexpectedDialogs).toEqual([]);
    expect(pageProblems).toEqual([]);
  });

  it("shows a run's row errors, on a dashboard reached from other machines, once the read token is typed", async () => {
    const message = "invalid email <b>jane@example</b>";
    await db.pool.query("INSERT INTO batch_errors (run_id, message, attempts, last_seen) VALUES ($1, $2, 3, now())", [
      hostileId,
      message,
    ]);
    const exposed = await startDashboard({
      MONITOR_DATABASE_URL: db.url,
      DASHBOARD_READ_TOKEN: READ_TOKEN,
      DASHBOARD_HOST: "0.0.0.0",
    });
    const tab = await browser.newPage();
    try {
      await tab.goto(`${exposed.url}/runs/${hostileId}`);
      await tab.waitForFunction(() => document.querySelector("#errors td.empty")?.textContent, { timeout: STEP_MS });
      expect(await tab.$eval("#errors", (node) => node.textContent)).toContain(
        "row errors can hold a row's values: they are shown to the holders of a token",
      );
      await tab.type("#read-token", READ_TOKEN);
      await tab.$eval("#read-token", (input) => input.dispatchEvent(new Event("change")));
      await tab.waitForFunction(() => document.querySelectorAll("#errors tbody td.number").length === 1, {
        timeout: STEP_MS,
      });
      expect(await tab.$$eval("#errors tbody td", (cells) => cells.map((cell) => cell.textContent))).toEqual([
        "3",
        message,
        expect.any(String),
      ]);
      expect(await tab.$$eval("#errors b", (bold) => bold.length)).toBe(0);
    } finally {
      await tab.close();
      await exposed.stop();
    }
  });

  it("starts a run of a job from the runs page, a field for its parameter, its problems shown", async () => {
    expect((await seed(["orders", "--rows", "50"], { DATABASE_URL: db.url })).code).toBe(0);
    const tab = await browser.newPage();
    try {
      await tab.goto(`${dashboard.url}/`);
      await tab.waitForSelector("#start-job", { timeout: STEP_MS });
      await tab.select("#start-job", "orders-reprice");
      expect(await tab.$eval("#start-params", (node) => node.textContent)).toBe("priceChangePct (integer) ");
      await tab.type("#start-name", "up10");
      await tab.type("#param-priceChangePct", "500");
      await tab.type("#start-token", TOKEN);
      await tab.click("#start");
      await tab.waitForFunction(() => document.getElementById("start-message")?.textContent, { timeout: STEP_MS });
      expect(await tab.$eval("#start-message", (node) => node.textContent)).toBe(
        "priceChangePct: Too big: expected number to be <=100",
      );
      await tab.$eval("#param-priceChangePct", (input) => {
        (input as HTMLInputElement).value = "10";
      });

      // a dry run first: its report, and nothing written
      const written = () =>
        db.pool.query(
          "SELECT (SELECT count(*)::int FROM batch_jobs) AS runs, (SELECT md5(string_agg(o::text, ',' ORDER BY order_id)) FROM orders o) AS orders",
        );
      const before = (await written()).rows;
      await tab.click("#dry-run");
      await tab.waitForFunction(() => document.getElementById("start-message")?.textContent?.startsWith("Dry run of"), {
        timeout: STEP_MS,
      });
      const report = await tab.$eval("#start-message", (node) =>
        // its lines, between <br>s
        Array.from(node.childNodes, (line) => line.textContent).filter((line) => line),
      );
      const sampled = Number(
        /^Dry run of job orders-reprice: (\d+) sampled rows, nothing written\.$/.exec(report[0] ?? "")?.[1],
      );
      expect(sampled).toBeGreaterThan(0);
      const outcomes = /^Would complete (\d+), would fail (\d+); \d+(\.\d+)? records\/s\.$/.exec(report[1] ?? "");
      expect(Number(outcomes?.[1]) + Number(outcomes?.[2])).toBe(sampled);
      expect((await written()).rows).toEqual(before);

      await tab.click("#start");
      await tab.waitForFunction(() => document.getElementById("start-message")?.textContent?.startsWith("Started"), {
        timeout: STEP_MS,
      });
      const { rows } = await db.pool.query(
        "SELECT config -> 'params' AS params FROM batch_jobs WHERE batch_name = 'up10'",
      );
      expect(rows).toEqual([{ params: { priceChangePct: 10 } }]);
    } finally {
      await tab.close();
    }
  });
});
