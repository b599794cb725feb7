import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { startDashboard } from "../support/dashboard";
import { createTestDatabase, statusCounts, type TestDatabase } from "../support/database";
import { type PgBouncer, type PoolMode, startPgBouncer } from "../support/pgbouncer";
import { batch, type Finished, lastJsonLine, MAIN, ROOT, run, seed, startWorker, status } from "../support/processes";
import { runByName } from "../support/runs";

const ROWS = 20_000;
const JOBS_CLI = path.join(ROOT, "dist/cli/jobs.js");
const CHUNK_SIZE = "2500";

/** The one line a program that needs a session prints when DATABASE_URL goes through a transaction pooler alone. */
const refusal = (who: string) =>
  `configuration error: DATABASE_POOLING=transaction keeps no session for ${who}: ` +
  "set WORKER_DIRECT_DATABASE_URL to a direct connection (or use session pooling)";

/** A run's end as `status --json` and the dashboard's API report it, through the pooler. */
async function expectCompletedEverywhere(db: TestDatabase, env: Record<string, string>, batch: string) {
  expect(await statusCounts(db.pool)).toEqual({ completed: ROWS });
  const row = await runByName(db.pool, batch);
  expect(row).toMatchObject({ status: "completed", total_records: ROWS, processed_records: ROWS, failed_records: 0 });

  const reported = await status([batch, "--json"], env);
  expect(reported.code).toBe(0);
  expect(JSON.parse(reported.stdout)).toMatchObject({
    id: row.id,
    name: batch,
    status: "completed",
    total: ROWS,
    completed: ROWS,
    failed: 0,
    pending: 0,
  });

  const dashboard = await startDashboard(env);
  try {
    const response = await fetch(`${dashboard.url}/api/runs/${row.id}`);
    expect(response.status).toBe(200);
    const { run } = (await response.json()) as { run: { chunks: { total: number; done: number } } };
    expect(run).toMatchObject({ id: row.id, name: batch, status: "completed", total: ROWS, completed: ROWS });
    // a chunk that finishes first may split one still running (src/chunks/chunk-split.ts): the
    // planned chunks or more, every one done
    expect(run.chunks.total).toBeGreaterThanOrEqual(ROWS / Number(CHUNK_SIZE));
    expect(run.chunks.done).toBe(run.chunks.total);
  } finally {
    await dashboard.stop();
  }
}

/** Each mode's own database and pooler in front of it. */
function behindPgBouncer(mode: PoolMode) {
  const context = {} as { db: TestDatabase; bouncer: PgBouncer; dataDir: string };
  beforeAll(async () => {
    context.db = await createTestDatabase();
    context.bouncer = await startPgBouncer(context.db.url, mode);
    context.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `pgbouncer-${mode}-`));
  });
  afterAll(async () => {
    await context.bouncer?.stop();
    await context.db?.drop();
    if (context.dataDir) fs.rmSync(context.dataDir, { recursive: true, force: true });
  });
  return context;
}

/** A setting as a new client of the pooler finds it on the server connection it is handed. */
async function pooledSetting(bouncer: PgBouncer, name: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: bouncer.url });
  await client.connect();
  try {
    const { rows } = await client.query(`SHOW ${name}`);
    return rows[0]?.[name];
  } finally {
    await client.end();
  }
}

/** The pooler's log, where a step failed: what PgBouncer refused says why. */
function explained(result: Finished, bouncer: PgBouncer): string {
  return `exit ${result.code}\n${result.stderr}\npgbouncer:\n${bouncer.process.output.stderr.slice(-4000)}`;
}

describe("behind PgBouncer in session pooling: everything through the pooler", () => {
  const context = behindPgBouncer("session");

  it("seeds, works a run to its end with --once, and reports it in status and on the dashboard", async () => {
    const { db, bouncer, dataDir } = context;
    const env = { DATABASE_URL: bouncer.url, DATABASE_POOLING: "session", CHUNK_SIZE };

    const seeded = await seed(
      ["all", "--rows", String(ROWS), "--rows-per-file", "5000", "--out", dataDir, "--batch-name", "pooled"],
      env,
    );
    expect(seeded.code).toBe(0);
    expect(lastJsonLine(seeded.stdout)).toMatchObject({ enqueued: { batch: "pooled", rows: ROWS } });

    const worker = await startWorker(["--once"], env).exited;
    expect(explained(worker, bouncer)).toMatch(/^exit 0\n/);

    await expectCompletedEverywhere(db, env, "pooled");
  });
});

describe("behind PgBouncer in transaction pooling: statements through the pooler, sessions direct", () => {
  const context = behindPgBouncer("transaction");

  it("refuses, in one line and with status 2, every program that needs a session, without a direct connection", async () => {
    const { bouncer, dataDir } = context;
    const pooledOnly = { DATABASE_URL: bouncer.url, DATABASE_POOLING: "transaction" };
    const refusals: [string, Promise<Finished>][] = [
      ["seed all", seed(["all", "--rows", "100", "--out", dataDir], pooledOnly)],
      ["seed schema", seed(["schema"], pooledOnly)],
      ["the worker", startWorker(["--once"], pooledOnly).exited],
      ["npm start", run(process.execPath, [MAIN, "--rows", "100"], pooledOnly)],
    ];
    for (const [who, finished] of refusals) {
      const result = await finished;
      expect({ who, code: result.code, stderr: result.stderr }).toEqual({ who, code: 2, stderr: `${refusal(who)}\n` });
    }
    // nothing reached the database
    const { rows } = await context.db.pool.query("SELECT to_regclass('batch_jobs') AS table");
    expect(rows[0].table).toBeNull();
  });

  it("seeds and enqueues, works the run to its end with --once, and reports it in status and on the dashboard", async () => {
    const { db, bouncer, dataDir } = context;
    const env = { DATABASE_URL: bouncer.url, DATABASE_POOLING: "transaction", CHUNK_SIZE };
    const direct = { ...env, WORKER_DIRECT_DATABASE_URL: db.url };

    // the schema's lock, the import's COPY and session settings: direct
    expect(explained(await seed(["schema"], direct), bouncer)).toMatch(/^exit 0\n/);
    const generated = await seed(
      ["generate", "--rows", String(ROWS), "--rows-per-file", "5000", "--out", dataDir],
      env,
    );
    expect(generated.code).toBe(0);
    expect(explained(await seed(["import", "--dir", dataDir], direct), bouncer)).toMatch(/^exit 0\n/);
    // the run's start and plan: statements, through the pooler alone
    const enqueued = await seed(["enqueue", "--batch-name", "pooled"], env);
    expect(explained(enqueued, bouncer)).toMatch(/^exit 0\n/);
    expect(lastJsonLine(enqueued.stdout)).toMatchObject({ batch: "pooled", status: "running", rows: ROWS });
    // steering the run, and checking the jobs against their tables: statements too
    for (const [signal, after] of [
      ["pause", "paused"],
      ["resume", "running"],
    ]) {
      const steered = await batch([signal as string, "pooled"], env);
      expect(explained(steered, bouncer)).toMatch(/^exit 0\n/);
      expect(JSON.parse(steered.stdout)).toMatchObject({ batch: "pooled", status: after });
    }
    expect(explained(await run(process.execPath, [JOBS_CLI, "check"], env), bouncer)).toMatch(/^exit 0\n/);

    const worker = await startWorker(["--once"], direct).exited;
    expect(explained(worker, bouncer)).toMatch(/^exit 0\n/);

    await expectCompletedEverywhere(db, env, "pooled");
    // the server connections the pooler hands to its next clients carry no setting of these programs
    expect(await pooledSetting(bouncer, "client_connection_check_interval")).toBe("0");
  });

  it("also runs `seed all` with a direct connection", async () => {
    const { bouncer, dataDir } = context;
    const direct = {
      DATABASE_URL: bouncer.url,
      DATABASE_POOLING: "transaction",
      WORKER_DIRECT_DATABASE_URL: context.db.url,
    };
    // the users are loaded and the run exists: seed all changes nothing, and says so
    const again = await seed(
      ["all", "--rows", String(ROWS), "--rows-per-file", "5000", "--out", dataDir, "--batch-name", "pooled"],
      direct,
    );
    expect(explained(again, bouncer)).toMatch(/^exit 0\n/);
    expect(lastJsonLine(again.stdout)).toMatchObject({
      enqueued: { batch: "pooled", created: false, status: "completed" },
    });
  });
});
