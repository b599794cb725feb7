import { defineJob } from "#pg-batch";
import { parseConfig } from "../../src/config/config";
import { insertUsers } from "../support/database";
import { metricSample } from "../support/metric-sample";
import { batch, seed, startMeasuredWorker } from "../support/processes";
import { lockedJobs, runByName, tally, waitFor } from "../support/runs";
import { expectWorkerHandsBackOnSigterm, useWorkersAndDatabase } from "../support/workers";

const RUN_ENV = { CHUNK_SIZE: "500", ROW_CONCURRENCY: "4", RETRY_DELAY_S: "0" };
/** Generous: the machine is shared and busy. */
const WAIT_MS = 120_000;
const TEST_MS = 4 * WAIT_MS;
const USERS = 'job="users"';

describe("the pause after each slice", () => {
  it("is read from SLICE_PAUSE_RATIO and a job's defaults, 0 to 100", () => {
    expect(parseConfig({}).slicePauseRatio).toBeUndefined();
    expect(parseConfig({ SLICE_PAUSE_RATIO: "1.5" }).slicePauseRatio).toBe(1.5);
    expect(() => parseConfig({ SLICE_PAUSE_RATIO: "-1" })).toThrow(/^SLICE_PAUSE_RATIO must be a number of at least 0/);
    expect(() => parseConfig({ SLICE_PAUSE_RATIO: "101" })).toThrow(
      'SLICE_PAUSE_RATIO must be a number from 0 to 100 (got "101")',
    );
    const job = { name: "paced", table: "users", key: "id", reads: {}, process: async () => undefined };
    expect(defineJob(job).defaults.slicePauseRatio).toBe(1);
    expect(defineJob({ ...job, defaults: { slicePauseRatio: 0.5 } }).defaults.slicePauseRatio).toBe(0.5);
    expect(() => defineJob({ ...job, defaults: { slicePauseRatio: -0.1 } })).toThrow(
      "job paced: default slicePauseRatio must be a number from 0 to 100",
    );
  });
});

describe("a run whose chunks pause after each slice", () => {
  const { db, workers } = useWorkersAndDatabase("SIGTERM");

  const measuredWorker = (env: Record<string, string>) =>
    startMeasuredWorker({ DATABASE_URL: db.url, ...RUN_ENV, ...env }, workers, WAIT_MS);

  const enqueue = async (name: string) =>
    expect((await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url, ...RUN_ENV })).code).toBe(0);

  it(
    "pauses once after every slice, and completes with exact books",
    async () => {
      await insertUsers(db.pool, 2000);
      await enqueue("paced");
      const metrics = await measuredWorker({ SLICE_PAUSE_RATIO: "1" });
      await waitFor(
        "the run to complete",
        async () => (await runByName(db.pool, "paced")).status === "completed",
        WAIT_MS,
      );
      const books = await tally(db.pool, "paced", 3);
      expect(books.pending).toBe(0);
      expect(books.completed).toBe(2000);
      expect(books.run.processed_records).toBe(2000);
      const text = await metrics();
      const slices = metricSample(text, "batch_slices_total", USERS);
      expect(slices).toBeGreaterThan(0);
      expect(metricSample(text, "batch_slice_pauses_total", USERS)).toBe(slices);
      expect(metricSample(text, "batch_slice_pause_seconds_total", USERS)).toBeGreaterThan(0);
    },
    TEST_MS,
  );

  it(
    "ends a pause at a shutdown, handing the chunk back, and at a cancel of the run",
    async () => {
      await insertUsers(db.pool, 2000);
      await enqueue("paused-long");
      // writes that take 50 ms a row, paused 100 times that: a slice's pause lasts minutes, longer
      // than the test waits, so the worker exits in time only if the pause ends on SIGTERM (and
      // the grace is longer still); one chunk at a time
      await db.pool.query(`CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql
                             AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;
                           CREATE TRIGGER slow_write BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION slow_write()`);
      const env = { WORKERS: "1", SLICE_PAUSE_RATIO: "100", SHUTDOWN_GRACE_S: "600" };
      // one chunk: it has committed a slice and not yet ended the pause after it
      const pausing = (metrics: () => Promise<string>) =>
        waitFor(
          "the chunk to pause",
          async () => {
            const text = await metrics();
            return (
              metricSample(text, "batch_slices_total", USERS) >= 1 &&
              metricSample(text, "batch_slice_pauses_total", USERS) === 0
            );
          },
          WAIT_MS,
        );
      await pausing(await measuredWorker(env));

      await expectWorkerHandsBackOnSigterm(workers, db.pool, WAIT_MS);

      // another worker takes the chunk back and pauses as the first did, until the run is cancelled
      await pausing(await measuredWorker(env));
      const done = (await tally(db.pool, "paused-long", 3)).completed;
      expect((await batch(["cancel", "paused-long"], { DATABASE_URL: db.url })).code).toBe(0);
      await waitFor(
        "the run to be cancelled",
        async () => (await runByName(db.pool, "paused-long")).status === "cancelled",
        WAIT_MS,
      );
      await waitFor("the chunk jobs to end", async () => (await lockedJobs(db.pool)) === 0, WAIT_MS);
      // nothing was claimed after the pause began
      expect((await tally(db.pool, "paused-long", 3)).completed).toBe(done);
    },
    TEST_MS,
  );
});
