import os from "node:os";
import { ConfigError, parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { recordThrottle } from "../../src/runs/throttle-state";
import { DASHBOARD_CLI, type Dashboard, startDashboard } from "../support/dashboard";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { run, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";
import { settledTableScans, tableScans } from "../support/table-scans";

const ROWS = 3000;
const TOKEN = "a-token-of-the-operators-0123456789";
const READ_TOKEN = "a-token-for-reading-errors-0123456789";
/**
 * The URL with a password in it, as a deployment's would carry one: the database's own (the
 * embedded server's), or one that trust authentication ignores. It must reach no response and
 * no log line.
 */
function withPassword(url: string): { url: string; password: string } {
  const parsed = new URL(url);
  parsed.password ||= "pa55-word-never-shown";
  return { url: parsed.toString(), password: decodeURIComponent(parsed.password) };
}

describe("the dashboard's JSON", () => {
  let db: TestDatabase;
  let readOnly: Dashboard;
  let controlled: Dashboard;
  let runId: number;
  let password: string;
  const bodies: string[] = [];

  async function get(dashboard: Dashboard, path: string): Promise<{ status: number; body: any; headers: Headers }> {
    const response = await fetch(`${dashboard.url}${path}`);
    const text = await response.text();
    bodies.push(text);
    return { status: response.status, body: text.startsWith("{") ? JSON.parse(text) : text, headers: response.headers };
  }

  async function post(path: string, token?: string): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const response = await fetch(`${controlled.url}${path}`, { method: "POST", headers });
    const text = await response.text();
    bodies.push(text);
    return { status: response.status, body: JSON.parse(text) };
  }

  beforeAll(async () => {
    db = await createMigratedDatabase();
    await insertUsers(db.pool, ROWS);
    // round 0 runs; the retry round waits a minute, so the run stays open with rows retrying
    const env = { CHUNK_SIZE: "1000", FAIL_RATE: "0.1", RETRY_DELAY_S: "60", POD_NAME: "pod-x" };
    await seed(["enqueue", "--batch-name", "reported"], { DATABASE_URL: db.url, ...env });
    expect((await startWorker(["--once"], { DATABASE_URL: db.url, ...env }).exited).code).toBe(0);
    runId = (await runByName(db.pool, "reported")).id;
    const secret = withPassword(db.url);
    const url = secret.url;
    password = secret.password;
    [readOnly, controlled] = await Promise.all([
      startDashboard({ DATABASE_URL: url, LOG_FORMAT: "json" }),
      startDashboard({ DATABASE_URL: url, DASHBOARD_TOKEN: TOKEN, LOG_FORMAT: "json" }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([readOnly?.stop(), controlled?.stop()]);
    await db?.drop();
  });

  it("lists the runs with their counters, as the database holds them", async () => {
    const { status, body } = await get(readOnly, "/api/runs");
    expect(status).toBe(200);
    const run = await runByName(db.pool, "reported");
    expect(body.runs).toEqual([
      expect.objectContaining({
        id: runId,
        name: "reported",
        status: "running",
        round: 1,
        total: ROWS,
        completed: run.processed_records,
        retrying: run.retryable_records,
        percentDone: Math.round((1000 * run.processed_records) / ROWS) / 10,
      }),
    ]);
    expect(run.retryable_records).toBeGreaterThan(0);
  });

  it("reports one run: chunks, workers with their heartbeat, errors by message", async () => {
    const { status, body } = await get(readOnly, `/api/runs/${runId}`);
    expect(status).toBe(200);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM users WHERE batch_status = 'failed'");
    expect(body.run).toMatchObject({
      id: runId,
      name: "reported",
      chunks: { total: 1, waiting: 1, running: 0, done: 0 },
      // the --once worker has exited: its session, and so its heartbeat, are gone
      workers: [{ worker: "pod-x", runningChunks: 0, rows: ROWS, heartbeat: null }],
      errors: [{ message: "injected failure (FAIL_RATE) on attempt 1", occurrences: rows[0].n }],
    });
    expect(Date.parse(body.run.workers[0].lastWrite)).toBeGreaterThan(0);
    expect((await get(readOnly, "/api/runs/999999")).status).toBe(404);
  });

  it("reports a throttled run: what its workers wait on, the figure against its threshold, since when", async () => {
    const withClient = withPool(db.pool);
    await recordThrottle(withClient, runId, "pod-x", { signal: "lock_wait", figure: 2.5, threshold: 1, unit: "s" });
    try {
      const { body } = await get(readOnly, `/api/runs/${runId}`);
      const { rows } = await db.pool.query("SELECT since FROM batch_throttles WHERE run_id = $1", [runId]);
      expect(body.run).toMatchObject({
        throttled: true,
        throttle: {
          signal: "lock_wait",
          figure: 2.5,
          threshold: 1,
          unit: "s",
          text: "lock wait 2.5 s over 1 s",
          since: rows[0].since.toISOString(),
          workers: 1,
        },
      });
      expect((await get(readOnly, "/api/runs")).body.runs[0]).toMatchObject({ id: runId, throttled: true });
    } finally {
      await recordThrottle(withClient, runId, "pod-x", null);
    }
    const { body } = await get(readOnly, `/api/runs/${runId}`);
    expect(body.run).toMatchObject({ throttled: false, throttle: null });
    const events = (await get(readOnly, `/api/runs/${runId}/events`)).body.events;
    expect(events.slice(0, 2)).toMatchObject([
      { event: "resumed", actor: "pod-x" },
      { event: "throttled", actor: "pod-x", detail: "lock wait 2.5 s over 1 s" },
    ]);
  });

  it("gives the progress samples, ending with the counters now", async () => {
    const { body } = await get(readOnly, `/api/runs/${runId}/samples`);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_samples WHERE run_id = $1", [runId]);
    expect(rows[0].n).toBeGreaterThan(0);
    expect(body.samples).toHaveLength(rows[0].n + 1);
    const run = await runByName(db.pool, "reported");
    expect(body.samples.at(-1).done).toBe(run.processed_records + run.failed_records);
    expect(body.samples[0].rowsPerSecond).toBeNull();
    const times = body.samples.map((sample: { at: string }) => Date.parse(sample.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it("gives the run's history, newest first", async () => {
    const { body } = await get(readOnly, `/api/runs/${runId}/events`);
    const { rows } = await db.pool.query("SELECT event FROM batch_events WHERE run_id = $1 ORDER BY id DESC", [runId]);
    expect(body.total).toBe(rows.length);
    expect(body.events.map((event: { event: string }) => event.event)).toEqual(rows.map((row) => row.event));
    expect(body.events.at(-1)).toMatchObject({ event: "started", step: "start" });
  });

  it("serves its pages and scripts under a strict Content-Security-Policy, and nothing else", async () => {
    for (const path of ["/", `/runs/${runId}`]) {
      const page = await get(readOnly, path);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-security-policy")).toContain("default-src 'self'; script-src 'self'");
      expect(page.body).not.toMatch(/<script>|<script [^>]*>[^<]|\son\w+=/);
    }
    for (const file of ["run-page.js", "runs-page.js", "uPlot.iife.min.js", "uPlot.min.css", "dashboard.css"]) {
      const asset = await get(readOnly, `/assets/${file}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toMatch(file.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
    }
    expect((await get(readOnly, "/assets/..%2F..%2Fpackage.json")).status).toBe(404);
    expect((await get(readOnly, "/assets/server.js")).status).toBe(404);
    expect((await get(readOnly, "/api/nothing")).status).toBe(404);
  });

  it("is read-only without a token: no controls, the control endpoints 404", async () => {
    expect((await get(readOnly, "/api/dashboard")).body).toEqual({ controls: false, errorsNeedToken: false });
    const response = await fetch(`${readOnly.url}/api/runs/${runId}/pause`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: "this dashboard is read-only: it was started without DASHBOARD_TOKEN",
    });
    expect((await runByName(db.pool, "reported")).status).toBe("running");
  });

  it("reads through MONITOR_DATABASE_URL, and then only reads, token or not", async () => {
    const monitor = await startDashboard({ MONITOR_DATABASE_URL: db.url, DASHBOARD_TOKEN: TOKEN, LOG_FORMAT: "json" });
    try {
      expect((await get(monitor, "/api/dashboard")).body).toEqual({ controls: false, errorsNeedToken: false });
      expect((await get(monitor, "/api/runs")).body.runs).toEqual([expect.objectContaining({ id: runId })]);
      expect(monitor.process.output.stderr).toContain("DASHBOARD_TOKEN is not used");
      // the reason it gives is the real one: it was given the token, and reads through the monitor's login
      const response = await fetch(`${monitor.url}/api/runs/${runId}/pause`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({
        error:
          "this dashboard is read-only: it reads through MONITOR_DATABASE_URL, a login meant for reading, " +
          "and then sends no signal, token or not",
      });
      expect((await runByName(db.pool, "reported")).status).toBe("running");
    } finally {
      await monitor.stop();
    }
  });

  it("shows row errors to the holders of a token once given one; without, only where it listens on loopback", async () => {
    const errorsOf = async (dashboard: Dashboard, token?: string) => {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const response = await fetch(`${dashboard.url}/api/runs/${runId}`, { headers });
      const text = await response.text();
      bodies.push(text);
      const { run } = JSON.parse(text);
      return { messages: run.errors.map((error: { message: string }) => error.message), hidden: run.errorsHidden };
    };
    const shown = { messages: ["injected failure (FAIL_RATE) on attempt 1"], hidden: undefined };
    const tokenNeeded = {
      messages: [],
      hidden: "row errors can hold a row's values: they are shown to the holders of a token",
    };
    const [withReadToken, exposed] = await Promise.all([
      startDashboard({ MONITOR_DATABASE_URL: db.url, DASHBOARD_READ_TOKEN: READ_TOKEN, DASHBOARD_HOST: "0.0.0.0" }),
      startDashboard({ MONITOR_DATABASE_URL: db.url, DASHBOARD_HOST: "0.0.0.0" }),
    ]);
    try {
      expect(await errorsOf(readOnly)).toEqual(shown);
      expect(await errorsOf(withReadToken)).toEqual(tokenNeeded);
      expect(await errorsOf(withReadToken, TOKEN)).toEqual(tokenNeeded);
      expect(await errorsOf(withReadToken, READ_TOKEN)).toEqual(shown);
      expect((await get(withReadToken, "/api/dashboard")).body).toEqual({ controls: false, errorsNeedToken: true });
      // the control token shows them too; the read token steers nothing
      expect(await errorsOf(controlled)).toEqual(tokenNeeded);
      expect(await errorsOf(controlled, TOKEN)).toEqual(shown);
      expect((await post(`/api/runs/${runId}/pause`, READ_TOKEN)).status).toBe(403);
      expect(await errorsOf(exposed)).toEqual({
        messages: [],
        hidden:
          "row errors can hold a row's values: a dashboard listening on 0.0.0.0 shows them only with DASHBOARD_READ_TOKEN",
      });
      expect(exposed.process.output.stderr).toContain("dashboard on http://0.0.0.0:");
      expect((await runByName(db.pool, "reported")).status).toBe("running");
    } finally {
      await Promise.all([withReadToken.stop(), exposed.stop()]);
    }
  });

  it("exports the runs by status and their backlog on /metrics, as the database holds them", async () => {
    const { status, body, headers } = await get(readOnly, "/metrics");
    expect(status).toBe(200);
    expect(headers.get("content-type")).toContain("text/plain");
    const { rows } = await db.pool.query(
      "SELECT rows_left::int, chunks_left::int FROM batch_backlog_by_job WHERE job = 'users'",
    );
    const lines = (body as string).split("\n").filter((line) => line.startsWith("batch_"));
    expect(lines.sort()).toEqual(
      [
        `batch_backlog_chunks{job="users"} ${rows[0]?.chunks_left ?? 0}`,
        `batch_backlog_rows{job="users"} ${rows[0]?.rows_left ?? 0}`,
        'batch_runs_ended_total{job="users",status="cancelled"} 0',
        'batch_runs_ended_total{job="users",status="completed"} 0',
        'batch_runs_ended_total{job="users",status="failed"} 0',
        'batch_runs_open{job="users",status="running"} 1',
      ].sort(),
    );
  });

  it("exits 2 when its port cannot be served", async () => {
    const port = new URL(readOnly.url).port;
    const taken = await run(process.execPath, [DASHBOARD_CLI], { DATABASE_URL: db.url, DASHBOARD_PORT: port });
    expect(taken.code).toBe(2);
    expect(taken.stderr).toContain(`configuration error: DASHBOARD_PORT ${port} cannot be served`);
  });

  it("refuses pause, resume, cancel and retry without the token, or with another", async () => {
    expect((await get(controlled, "/api/dashboard")).body).toEqual({ controls: true, errorsNeedToken: true });
    for (const signal of ["pause", "resume", "cancel", "retry"]) {
      expect((await post(`/api/runs/${runId}/${signal}`)).status).toBe(403);
      expect((await post(`/api/runs/${runId}/${signal}`, "not-the-token-0123456789")).status).toBe(403);
    }
    expect((await fetch(`${controlled.url}/api/runs/${runId}/pause`)).status).toBe(405);
    expect((await runByName(db.pool, "reported")).status).toBe("running");
  });

  it("pauses, resumes and cancels with the token, as `batch` would, and refuses a retry as it would", async () => {
    const active = await post(`/api/runs/${runId}/retry`, TOKEN);
    expect(active).toEqual({
      status: 409,
      body: { error: 'batch run "reported" is running; a retry takes up the failed rows of a run that has ended' },
    });

    const paused = await post(`/api/runs/${runId}/pause`, TOKEN);
    expect(paused).toEqual({ status: 200, body: { run: runId, status: "paused", changed: true } });
    expect((await runByName(db.pool, "reported")).status).toBe("paused");
    expect((await post(`/api/runs/${runId}/pause`, TOKEN)).body).toMatchObject({ status: "paused", changed: false });

    expect((await post(`/api/runs/${runId}/resume`, TOKEN)).body).toMatchObject({ status: "running", changed: true });
    expect((await runByName(db.pool, "reported")).status).toBe("running");

    const { rows } = await db.pool.query(
      "SELECT event, actor FROM batch_events WHERE run_id = $1 AND step = 'control' ORDER BY id",
      [runId],
    );
    expect(rows).toEqual([
      { event: "paused", actor: `dashboard@${os.hostname()}` },
      { event: "resumed", actor: `dashboard@${os.hostname()}` },
    ]);

    expect((await post(`/api/runs/${runId}/cancel`, TOKEN)).body).toMatchObject({ changed: true });
    await waitFor("the run to be cancelled", async () => (await runByName(db.pool, "reported")).status === "cancelled");
    const refused = await post(`/api/runs/${runId}/resume`, TOKEN);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toContain("was cancelled, which ended it; its unprocessed rows are pending");
    expect((await post(`/api/runs/${runId}/retry`, TOKEN)).body.error).toEqual(refused.body.error);
    expect((await post("/api/runs/999999/pause", TOKEN)).status).toBe(404);
  });

  it("reads no users row, however often its pages poll", async () => {
    const users = await settledTableScans(db.pool, "users");
    const runs = await tableScans(db.pool, "batch_jobs");
    for (const path of ["/api/runs", `/api/runs/${runId}`, `/api/runs/${runId}/samples`, `/api/runs/${runId}/events`]) {
      for (let i = 0; i < 3; i++) expect((await get(readOnly, path)).status).toBe(200);
    }
    await waitFor("statistics to arrive", async () => (await tableScans(db.pool, "batch_jobs")) > runs);
    expect(await tableScans(db.pool, "users")).toBe(users);
  });

  it("sends no connection string, password or token to the browser, and logs none", async () => {
    expect(bodies.length).toBeGreaterThan(20);
    for (const body of bodies) {
      expect(body).not.toContain(password);
      expect(body).not.toContain("postgres://");
      expect(body).not.toContain(TOKEN);
      expect(body).not.toContain(READ_TOKEN);
    }
    for (const dashboard of [readOnly, controlled]) {
      // outside Kubernetes it listens on loopback unless DASHBOARD_HOST says otherwise
      expect(dashboard.process.output.stderr).toContain("dashboard on http://127.0.0.1:");
      expect(dashboard.process.output.stderr).not.toContain(password);
      expect(dashboard.process.output.stderr).not.toContain(TOKEN);
    }
  });
});

describe("the dashboard's configuration", () => {
  it("refuses a token holding white space at start, in one line, before it connects", async () => {
    const env = { DATABASE_URL: "postgres://postgres@127.0.0.1:1/postgres", DASHBOARD_PORT: "0" };
    const refused = await run(process.execPath, [DASHBOARD_CLI], { ...env, DASHBOARD_TOKEN: "two words\t0123456789" });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      "configuration error: DASHBOARD_TOKEN must not hold white space: " +
        "it travels as `Authorization: Bearer TOKEN`, split on the space\n",
    );
  });

  it("defaults to port 8080 and reading only; never echoes a token or connection string it refuses", () => {
    expect(parseConfig({}).dashboard).toEqual({
      port: 8080,
      host: "127.0.0.1",
      token: undefined,
      readToken: undefined,
      monitorDatabaseUrl: undefined,
    });
    expect(() => parseConfig({ DASHBOARD_READ_TOKEN: "short-secret" })).toThrow(
      new ConfigError("DASHBOARD_READ_TOKEN must be at least 16 characters"),
    );
    expect(() => parseConfig({ DASHBOARD_TOKEN: "short-secret" })).toThrow(
      new ConfigError("DASHBOARD_TOKEN must be at least 16 characters"),
    );
    expect(() => parseConfig({ DASHBOARD_TOKEN: "two words-0123456789" })).toThrow(
      new ConfigError(
        "DASHBOARD_TOKEN must not hold white space: it travels as `Authorization: Bearer TOKEN`, split on the space",
      ),
    );
    expect(() => parseConfig({ MONITOR_DATABASE_URL: "mysql://u:secret@h/db" })).toThrow(
      new ConfigError("MONITOR_DATABASE_URL must be a postgres:// or postgresql:// connection string"),
    );
    expect(() => parseConfig({ DASHBOARD_PORT: "70000" })).toThrow(
      'DASHBOARD_PORT must be a whole number from 0 to 65535 (got "70000")',
    );
  });
});
