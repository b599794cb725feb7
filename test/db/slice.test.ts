import type { JobDefinition } from "#pg-batch";
import { ChunkEndedError, type SliceRequest, workSlice, writeLateOutcomes } from "../../src/chunks/slice";
import type { ChunkDeps } from "../../src/chunks/work-through-chunk";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { JobCatalog } from "../../src/jobs/catalog";
import { ClaimedRows } from "../../src/jobs/claimed-rows";
import { processRecords, type RecordOutcome } from "../../src/processing/process-records";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { planRun } from "../../workflows/plan-run";
import { runSettings, startRun } from "../../workflows/start-run";
import { createMigratedDatabase, insertUsers, type TestDatabase, useTestDatabase } from "../support/database";
import { inProcessDeps } from "../support/in-process";
import { usersJob } from "../support/jobs";

/** `users` rows of the default job, and a run over them planned in chunks of `chunkSize`. */
async function plannedRun(db: TestDatabase, name: string, users: number, chunkSize: number) {
  await insertUsers(db.pool, users);
  const pool = withPool(db.pool);
  const settings = runSettings(parseConfig({ CHUNK_SIZE: String(chunkSize) }), usersJob);
  const { run } = await startRun(pool, usersJob, name, settings, "test");
  await planRun(pool, run.id, "test");
  return run;
}

describe("a slice", () => {
  let db: TestDatabase;
  let request: SliceRequest;
  beforeEach(async () => {
    db = await createMigratedDatabase();
    const run = await plannedRun(db, "slices", 20, 20);
    const { rows } = await db.pool.query("SELECT planned_at FROM batch_chunks WHERE run_id = $1", [run.id]);
    request = {
      job: usersJob,
      runId: run.id,
      round: 0,
      chunkNo: 0,
      firstId: 1n,
      lastId: 20n,
      limit: 100,
      maxAttempts: 3,
      plannedAt: rows[0].planned_at,
      statementTimeoutMs: 5000,
      idleTimeoutMs: 5000,
    };
  });
  afterEach(() => db.drop());

  const complete = (rows: ClaimedRows, count = rows.length): RecordOutcome[] =>
    rows.records.slice(0, count).map((record) => ({
      status: "completed",
      result: { emailNormalized: record.email as string, segment: "s" },
    }));

  it("hands the business logic typed records: numbers for ids, the timestamp's text", async () => {
    let seen = new ClaimedRows();
    const client = await db.pool.connect();
    try {
      await workSlice(client, request, async (records) => {
        seen = records;
        return complete(records);
      });
    } finally {
      client.release();
    }
    expect(seen).toHaveLength(20);
    expect([seen.keys[0], seen.attempts[0], seen.statuses[0]]).toEqual(["1", 0, "pending"]);
    expect(seen.records[0]).toMatchObject({ id: 1, name: "User 1", email: "user.1@example.com" });
    expect(typeof seen.records[0]?.createdAt).toBe("string");
    expect(seen.records[0]?.createdAt).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  });

  it("skips rows another transaction holds, and writes each claimed row once", async () => {
    const holder = await db.pool.connect();
    const client = await db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM users WHERE id <= 10 FOR UPDATE");
      let claimed: number[] = [];
      const result = await workSlice(client, request, async (records) => {
        claimed = records.records.map((record) => record.id as number);
        return complete(records);
      });
      expect(claimed).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
      expect(result).toMatchObject({ claimed: 10, done: 10, completed: 10, lastProcessedId: 20n });
      await holder.query("ROLLBACK");
      const { rows } = await db.pool.query(
        "SELECT count(*) FILTER (WHERE batch_status = 'completed')::int AS done, max(attempts)::int AS attempts FROM users",
      );
      expect(rows[0]).toEqual({ done: 10, attempts: 1 });
    } finally {
      holder.release();
      client.release();
    }
  });

  it("writes only the outcomes of the records that started, releasing the rest", async () => {
    const client = await db.pool.connect();
    try {
      const result = await workSlice(client, request, async (records) => complete(records, 5));
      expect(result).toMatchObject({ claimed: 20, done: 5, lastProcessedId: 5n });
      const { rows } = await db.pool.query(
        "SELECT count(*) FILTER (WHERE batch_status = 'pending')::int AS pending FROM users",
      );
      expect(rows[0].pending).toBe(15);
      const { rows: run } = await db.pool.query("SELECT processed_records FROM batch_jobs WHERE id = $1", [
        request.runId,
      ]);
      expect(run[0].processed_records).toBe(5);
    } finally {
      client.release();
    }
  });

  it("counts its wait for tokens with its outcomes when a refused value has them written again apart", async () => {
    const client = await db.pool.connect();
    try {
      // segment is a varchar(32): the database refuses row 7's, and the slice's write with it
      const result = await workSlice(client, { ...request, tokenWaitSeconds: 2.5 }, async (records) =>
        complete(records).map((outcome, index) =>
          index === 6 ? { status: "completed", result: { emailNormalized: "e@x", segment: "s".repeat(40) } } : outcome,
        ),
      );
      expect(result).toMatchObject({ done: 20, completed: 19, waitCounted: 2.5 });
      const { rows } = await db.pool.query(
        "SELECT processed_records, failed_records + retryable_records AS failed, rate_limit_waited_seconds FROM batch_jobs WHERE id = $1",
        [request.runId],
      );
      expect(rows[0]).toEqual({ processed_records: 19, failed: 1, rate_limit_waited_seconds: 2.5 });
    } finally {
      client.release();
    }
  });

  it("writes nothing when another job ended its chunk while it ran", async () => {
    const client = await db.pool.connect();
    try {
      const slice = workSlice(client, request, async (records) => {
        await db.pool.query("UPDATE batch_chunks SET status = 'done' WHERE run_id = $1", [request.runId]);
        return complete(records);
      });
      await expect(slice).rejects.toThrow(ChunkEndedError);
      const { rows } = await db.pool.query(
        `SELECT (SELECT count(*)::int FROM users WHERE batch_status = 'pending') AS pending,
                (SELECT processed_records FROM batch_jobs WHERE id = $1) AS counted`,
        [request.runId],
      );
      expect(rows[0]).toEqual({ pending: 20, counted: 0 });
    } finally {
      client.release();
    }
  });

  describe("claimed and written a part at a time", () => {
    const streamed = () => ({ ...request, part: 4 });
    /** Runs the records through processRecords with the slice's feed, as a chunk does. */
    const run = (
      records: ClaimedRows,
      feed: Parameters<typeof processRecords>[2]["feed"],
      overrides: Partial<Parameters<typeof processRecords>[2]> = {},
    ) =>
      processRecords(records, async (record) => ({ emailNormalized: record.email as string, segment: "s" }), {
        runId: request.runId,
        concurrency: 2,
        timeoutMs: 5000,
        signal: new AbortController().signal,
        mayStart: () => true,
        feed,
        ...overrides,
      });

    it("claims the next part while records run and writes every outcome once, in the one transaction", async () => {
      const client = await db.pool.connect();
      let firstPart = 0;
      try {
        const result = await workSlice(client, streamed(), (records, feed) => {
          firstPart = records.length;
          return run(records, feed);
        });
        expect(result).toMatchObject({ claimed: 20, done: 20, completed: 20, lastProcessedId: 20n });
      } finally {
        client.release();
      }
      expect(firstPart).toBe(4);
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE batch_status = 'completed' AND email_normalized = email)::int AS done,
                max(attempts)::int AS attempts,
                (SELECT processed_records FROM batch_jobs WHERE id = $1) AS counted,
                (SELECT rows_completed FROM batch_chunks WHERE run_id = $1) AS chunk
           FROM users`,
        [request.runId],
      );
      expect(rows[0]).toEqual({ done: 20, attempts: 1, counted: 20, chunk: 20 });
    });

    it("writes only the records that started, and releases the parts claimed beyond them", async () => {
      const client = await db.pool.connect();
      let started = 0;
      try {
        const result = await workSlice(client, streamed(), (records, feed) =>
          run(records, feed, { concurrency: 1, mayStart: () => started++ < 7 }),
        );
        expect(result).toMatchObject({ done: 7, completed: 7, lastProcessedId: 7n });
      } finally {
        client.release();
      }
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE batch_status = 'pending')::int AS pending,
                (SELECT processed_records FROM batch_jobs WHERE id = $1) AS counted
           FROM users`,
        [request.runId],
      );
      expect(rows[0]).toEqual({ pending: 13, counted: 7 });
    });

    it("commits at its bound with the records that ended, releasing every row, and writes a later one apart", async () => {
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      const client = await db.pool.connect();
      try {
        const result = await workSlice(client, { ...streamed(), commitWithinMs: 300 }, (records, feed) =>
          processRecords(
            records,
            async (record) => {
              // row 3 runs past the bound; the others end at once
              if (record.id === 3) await released;
              return { emailNormalized: record.email as string, segment: "s" };
            },
            {
              runId: request.runId,
              concurrency: 2,
              timeoutMs: 30_000,
              signal: new AbortController().signal,
              mayStart: () => true,
              feed,
            },
          ),
        );
        expect(result).toMatchObject({ claimed: 20, done: 19, completed: 19, lastProcessedId: 20n });
        const late = result?.late;
        expect(late?.count).toBe(1);
        // committed: row 3 is pending and nobody holds it while its record runs
        const free = await db.pool.query(
          "SELECT id FROM users WHERE id = 3 AND batch_status = 'pending' FOR UPDATE NOWAIT",
        );
        expect(free.rowCount).toBe(1);
        const counted = await db.pool.query("SELECT processed_records FROM batch_jobs WHERE id = $1", [request.runId]);
        expect(counted.rows[0].processed_records).toBe(19);

        release();
        const ended = await late?.next();
        expect(ended?.rows.keys).toEqual(["3"]);
        if (!late || !ended) throw new Error("no late outcome");
        expect(await writeLateOutcomes(client, late.request, ended.rows, ended.outcomes)).toEqual({
          completed: 1,
          failed: 0,
          retryable: 0,
        });
        expect(await late.next()).toBeUndefined();
      } finally {
        release();
        client.release();
      }
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE batch_status = 'completed' AND attempts = 1)::int AS done,
                (SELECT processed_records FROM batch_jobs WHERE id = $1) AS counted,
                (SELECT rows_completed FROM batch_chunks WHERE run_id = $1) AS chunk
           FROM users`,
        [request.runId],
      );
      expect(rows[0]).toEqual({ done: 20, counted: 20, chunk: 20 });
    });

    it("rolls back the outcomes it wrote as they came when the slice is abandoned", async () => {
      const client = await db.pool.connect();
      const abandon = new AbortController();
      let settled = 0;
      try {
        const slice = workSlice(client, streamed(), (records, feed) =>
          run(
            records,
            {
              more: (length) => feed.more(length),
              started: (index) => feed.started(index),
              settled: (index, outcome) => {
                feed.settled(index, outcome);
                // two parts' outcomes handed over to be written: then the worker's grace runs out
                if (++settled === 10) abandon.abort(new Error("grace ran out"));
              },
            },
            { concurrency: 1, signal: abandon.signal },
          ),
        );
        await expect(slice).rejects.toThrow("grace ran out");
      } finally {
        client.release();
      }
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE batch_status = 'pending' AND attempts = 0)::int AS untouched,
                (SELECT processed_records FROM batch_jobs WHERE id = $1) AS counted
           FROM users`,
        [request.runId],
      );
      expect(rows[0]).toEqual({ untouched: 20, counted: 0 });
    });
  });
});

describe("a worker's chunks of one job", () => {
  const db = useTestDatabase({ each: true });

  it("start at the slice size the job's chunks settled on before, not at one wave of records again", async () => {
    const run = await plannedRun(db, "settled", 6000, 3000);
    const slices: number[] = [];
    const deps: ChunkDeps = {
      ...inProcessDeps(db.pool),
      // a lock bound no busy machine reaches: a slice that commits at it reports the part it did
      maxLockHoldMs: 60_000,
      settledSlices: new Map(),
      observer: { sliceCommitted: (slice) => slices.push(slice.completed), chunkEnded: () => undefined },
    };
    const job = { attempt: 1, maxAttempts: 3 };
    await runChunkQueueJob(deps, { runId: run.id, round: 0, chunkNo: 0 }, { ...job, key: "a" });
    const firstChunk = slices.splice(0);
    // what the slices settled on depends on the machine's pace: the next chunk starts at whatever
    // is recorded, so record a size no pace gives to see it taken
    const recorded = deps.settledSlices?.get("users");
    deps.settledSlices?.set("users", { rows: 1234, recordMs: 0 });
    await runChunkQueueJob(deps, { runId: run.id, round: 0, chunkNo: 1 }, { ...job, key: "b" });

    // one wave of the in-process worker's 8 records in flight, at least 100 rows
    expect(firstChunk[0]).toBe(100);
    expect(recorded).toEqual({ rows: expect.any(Number), recordMs: expect.any(Number) });
    expect(slices[0]).toBe(1234);
    const { rows } = await db.pool.query("SELECT count(*)::int AS done FROM users WHERE batch_status = 'completed'");
    expect(rows[0].done).toBe(6000);
  });

  it("overlap their slices: the next slice's records take the slots of a record that outlasts its own slice's others", async () => {
    const run = await plannedRun(db, "overlap", 400, 400);
    let inFlight = 0;
    let most = 0;
    let nextSliceStarted: () => void = () => undefined;
    const nextSliceStart = new Promise<void>((resolve) => {
      nextSliceStarted = resolve;
    });
    const job: JobDefinition = {
      ...usersJob,
      async process(user, ctx) {
        inFlight++;
        most = Math.max(most, inFlight);
        try {
          const id = user.id as number;
          if (id > 200) nextSliceStarted();
          // the first slice's last record ends only once a record of the next slice has started:
          // with slices one after the other it would wait for its timeout, and fail
          if (id === 200) await nextSliceStart;
          else await new Promise((resolve) => setTimeout(resolve, 1));
          return await usersJob.process(user, ctx);
        } finally {
          inFlight--;
        }
      },
    };
    const deps: ChunkDeps = {
      ...inProcessDeps(db.pool),
      jobs: new JobCatalog([job]),
      rowTimeoutMs: 3000,
      // slices of 200 rows whose records wait on I/O, claimed a part at a time
      settledSlices: new Map([["users", { rows: 200, recordMs: 2 }]]),
    };
    const outcome = await runChunkQueueJob(
      deps,
      { runId: run.id, round: 0, chunkNo: 0 },
      { attempt: 1, maxAttempts: 3, key: "a" },
    );

    expect(outcome.kind).toBe("finished");
    const { rows } = await db.pool.query(
      "SELECT batch_status AS status, count(*)::int AS rows FROM users GROUP BY 1 ORDER BY 1",
    );
    expect(rows).toEqual([{ status: "completed", rows: 400 }]);
    // the in-process worker's 8 records in flight, whichever slices they belong to
    expect(most).toBe(8);
  });
});
