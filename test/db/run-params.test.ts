import { column, defineJob, z } from "#pg-batch";
import { UsageError } from "../../src/base/command-error";
import { JOBS_DIR } from "../../src/base/paths";
import { parseConfig } from "../../src/config/config";
import { useCatalog } from "../../src/config/context";
import { withPool } from "../../src/db/pool";
import { loadCatalog } from "../../src/jobs/catalog";
import { paramsFromAssignments } from "../../src/jobs/params";
import { stateMigrationSql } from "../../src/jobs/state-migration";
import { readRunReport } from "../../src/status/read-status";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { RunStartedOtherwiseError, runSettings, startRun } from "../../workflows/start-run";
import { useTestDatabase } from "../support/database";
import { inProcessDeps, runRoundInProcess } from "../support/in-process";

/** A job that raises prices by its run's `pct` and labels them, its hooks recording the run's parameters. */
function scaleJob(params: z.ZodType<{ pct: number; label: string }, { pct: unknown; label?: string }>) {
  return defineJob({
    name: "scale",
    table: "items",
    key: "id",
    reads: { price: column.integer() },
    writes: { newPrice: column.integer("new_price"), label: column.text() },
    state: "scale",
    params,
    async process(item, ctx) {
      // @ts-expect-error: the schema has no such parameter
      ctx.params.region;
      return { newPrice: (item.price * (100 + ctx.params.pct)) / 100, label: ctx.params.label };
    },
    async beforeRun({ run, query }) {
      await query("INSERT INTO hook_params VALUES ('before', $1)", [run.params]);
    },
    async afterRun({ run, query }) {
      await query("INSERT INTO hook_params VALUES ('after', $1)", [run.params]);
    },
  });
}

const SCHEMA = z.object({
  pct: z.number().int().min(0).max(100),
  label: z
    .string()
    .default("plain")
    .transform((label) => label.toUpperCase()),
});
const job = scaleJob(SCHEMA);

describe("a run's parameters", () => {
  const db = useTestDatabase({ each: true });
  const config = parseConfig({ CHUNK_SIZE: "50", MAX_ATTEMPTS: "1" });
  const start = (name: string, params: Record<string, unknown>) =>
    startRun(withPool(db.pool), job, name, runSettings(config, job, params), "test", "now");

  beforeAll(() => useCatalog([job]));
  afterAll(() => useCatalog(loadCatalog(JOBS_DIR).jobs));
  beforeEach(async () => {
    await db.pool.query(`
      CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL, new_price INTEGER, label TEXT);
      INSERT INTO items SELECT n, 100 * n, NULL, NULL FROM generate_series(1, 120) AS n;
      CREATE TABLE hook_params (hook TEXT, params JSONB)`);
    await db.pool.query(stateMigrationSql(job));
  });

  const runs = async () => (await db.pool.query("SELECT batch_name FROM batch_jobs WHERE kind = 'process'")).rows;

  it("are checked at the start: one line a problem, a usage error, and nothing started", async () => {
    const refusal = await start("bad", { pct: 120, label: 7, region: "eu" }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(UsageError);
    expect((refusal as UsageError).lines).toEqual([
      "region: not a parameter of job scale (its parameters: pct, label)",
      "pct: Too big: expected number to be <=100",
      "label: Invalid input: expected string, received number",
    ]);
    await expect(start("none", {})).rejects.toThrow("pct: Invalid input: expected number, received undefined");
    expect(await runs()).toEqual([]);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs")).rows[0].n).toBe(0);
  });

  it("make the run: the same ones return it unchanged, others are refused naming the difference", async () => {
    const first = await start("raise", { pct: 10 });
    expect(first.created).toBe(true);
    const again = await start("raise", { pct: 10 });
    expect(again).toMatchObject({ created: false, run: { id: first.run.id } });
    // compared as the schema reads them: its default given is the same start
    expect(await start("raise", { pct: 10, label: "plain" })).toMatchObject({ created: false });
    await expect(start("raise", { pct: 20, label: "x" })).rejects.toThrow(
      new RunStartedOtherwiseError(
        `batch run "raise" (id ${first.run.id}) was started with label="PLAIN", not "X"; pct=10, not 20: ` +
          "start those under another name",
      ),
    );
    expect(await runs()).toEqual([{ batch_name: "raise" }]);
  });

  it("reach every record and both hooks parsed by the job's schema, and show in status", async () => {
    const { run } = await start("raise", { pct: 10 });
    await runRoundInProcess(db.pool, run.id);

    const { rows } = await db.pool.query(
      "SELECT count(*)::int AS n, bool_and(new_price = 110 * id) AS raised, min(label) AS label FROM items WHERE scale_status = 'completed'",
    );
    expect(rows).toEqual([{ n: 120, raised: true, label: "PLAIN" }]);
    expect((await db.pool.query("SELECT hook, params FROM hook_params ORDER BY hook DESC")).rows).toEqual([
      { hook: "before", params: { pct: 10, label: "PLAIN" } },
      { hook: "after", params: { pct: 10, label: "PLAIN" } },
    ]);
    const report = await withPool(db.pool)((client) => readRunReport(client, run.id));
    expect(report).toMatchObject({ status: "completed", params: { pct: 10 } });
  });

  it("refused by a later version of the job's schema fail the chunk, saying so", async () => {
    const { run } = await start("raise", { pct: 10 });
    const stricter = scaleJob(SCHEMA.extend({ pct: z.number().int().max(5) }));
    useCatalog([stricter]);
    try {
      const chunk = { runId: run.id, round: 0, chunkNo: 0 };
      const message =
        `batch run ${run.id}'s parameters do not fit job scale's params schema now (its file changed since the run ` +
        "started?): pct: Too big: expected number to be <=5";
      await expect(
        runChunkQueueJob(inProcessDeps(db.pool), chunk, { key: "k0", attempt: 1, maxAttempts: 1 }),
      ).rejects.toThrow(message);
      const { rows } = await db.pool.query(
        "SELECT status, last_error FROM batch_chunks WHERE run_id = $1 AND chunk_no = 0",
        [run.id],
      );
      expect(rows).toEqual([{ status: "failed", last_error: message }]);
      expect(
        (await db.pool.query("SELECT count(*)::int AS n FROM items WHERE scale_status <> 'pending'")).rows[0].n,
      ).toBe(0);
    } finally {
      useCatalog([job]);
    }
  });
});

describe("--param assignments", () => {
  const schema = z.object({ pct: z.number(), code: z.string(), tags: z.array(z.string()), any: z.unknown() });

  it("give a parameter that takes text its value as written, any other its value read as JSON", () => {
    const given = paramsFromAssignments(schema, ["pct=10", "code=007", 'tags=["a"]', "any=not json"]);
    expect(given).toEqual({ params: { pct: 10, code: "007", tags: ["a"], any: "not json" }, problems: [] });
    expect(paramsFromAssignments(schema, ["pct", "code=1", "code=2"]).problems).toEqual([
      "--param pct: must be key=value",
      "code: given twice",
    ]);
  });
});
