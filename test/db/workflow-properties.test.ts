import fc from "fast-check";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { checkInvariants } from "../support/workflow-invariants";
import { CHUNK_ROWS, FAIL_RATE, type Operation, operation, WorkflowDriver } from "../support/workflow-operations";

/**
 * Random sequences of legitimate and hostile operations on real runs: start, pause, resume,
 * cancel, retry, workers running due jobs, steps and chunks called directly with any round and chunk,
 * jobs added by hand (keyless, under their own key, under another chunk's key), workers dying
 * with a chunk. After each operation the invariants of test/support/workflow-invariants.ts must
 * hold; at the end, with the workers run to completion, no run is left active and no job due.
 */

/** Three chunks a round, as the operations expect (chunk numbers up to 4 go past them). */
const ROWS = 3 * CHUNK_ROWS;
/**
 * Sequences per run of the suite: each is a few seconds of work on a busy machine. FC_NUM_RUNS
 * asks for more (a search of its own, beside FC_SEED to replay one).
 */
const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? 50);
/** The test's timeout follows its work: a bound on each sequence, never on the whole. */
const MS_PER_RUN = 6_000;

/** The environment the in-process tasks read (src/config/config.ts): quiet, and the tests' failures. */
const TASK_ENV = { LOG_LEVEL: "silent", POD_NAME: "property-worker", FAIL_RATE: String(FAIL_RATE) };

describe("batch-run workflow properties", () => {
  let db: TestDatabase;
  const savedEnv = { ...process.env };
  beforeAll(async () => {
    Object.assign(process.env, TASK_ENV);
    db = await createMigratedDatabase();
  });
  afterAll(async () => {
    process.env = savedEnv;
    await db.drop();
  });

  async function reset(): Promise<void> {
    await db.pool.query("TRUNCATE users, batch_jobs, graphile_worker._private_jobs RESTART IDENTITY CASCADE");
    await insertUsers(db.pool, ROWS);
  }

  /** Runs the operations after a start, checking the invariants after each and at the end. */
  async function scenario(operations: Operation[]): Promise<void> {
    await reset();
    const driver = new WorkflowDriver(db.pool);
    const seenEnded = new Map<number, string>();
    const log: string[] = [];
    const fail = (problems: string[]) => {
      throw new Error(`invariants broken:\n  ${problems.join("\n  ")}\nafter:\n  ${log.join("\n  ")}`);
    };
    for (const step of [{ op: "start", name: "a" } as Operation, ...operations]) {
      try {
        log.push(`${JSON.stringify(step)} -> ${await driver.apply(step)}`);
      } catch (error) {
        log.push(`${JSON.stringify(step)} -> threw`);
        fail([String(error)]);
      }
      const problems = await checkInvariants(db.pool, seenEnded);
      if (problems.length > 0) fail(problems);
    }
    const unsettled = await driver.settle();
    const problems = [...unsettled, ...(await checkInvariants(db.pool, seenEnded))];
    if (problems.length > 0) fail(problems);
  }

  /** The run's three rounds, their chunks run here, where FAIL_RATE fails rows: it ends with failed rows. */
  const roundsFailingRows: Operation[] = [0, 1, 2].flatMap(() => [
    ...[0, 1, 2].map((chunkNo): Operation => ({ op: "chunk", roundOffset: 0, chunkNo })),
    { op: "finish", roundOffset: 0 },
  ]);
  const operations = fc.array(operation, { minLength: 1, maxLength: 16 });
  /** Replays a reported failure: FC_SEED and FC_PATH as fast-check printed them. */
  const replay = process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH } : {};

  it(
    "keeps every invariant under random legitimate and forged operations",
    async () => {
      await fc.assert(fc.asyncProperty(operations, scenario), { numRuns: NUM_RUNS, endOnFailure: true, ...replay });
    },
    NUM_RUNS * MS_PER_RUN,
  );

  // few: each sequence runs the run's three rounds first
  it("keeps every invariant under random operations after a run ended with failed rows, retries among them", async () => {
    const afterFailures = fc
      .array(operation, { minLength: 1, maxLength: 8 })
      .map((after) => [...roundsFailingRows, { op: "retry" } as Operation, ...after]);
    await fc.assert(fc.asyncProperty(afterFailures, scenario), { numRuns: 10, endOnFailure: true, ...replay });
  });

  it.each<[string, Operation[]]>([
    // the reports, as operations
    [
      "a finish added for a paused run",
      [
        { op: "pause" },
        { op: "forge", task: "batch_finish", roundOffset: 0, chunkNo: 0, key: "none", maxAttempts: 25 },
      ],
    ],
    [
      "finishes of this round and the next while a chunk runs",
      [
        { op: "kill", startsChunk: true },
        { op: "forge", task: "batch_finish", roundOffset: 0, chunkNo: 0, key: "none", maxAttempts: 25 },
        { op: "forge", task: "batch_finish", roundOffset: 1, chunkNo: 0, key: "none", maxAttempts: 25 },
        { op: "worker" },
      ],
    ],
    [
      "a cancel while a worker that took a chunk's job has not started it yet",
      [{ op: "kill", startsChunk: false }, { op: "cancel" }, { op: "worker" }],
    ],
    [
      "a finish of a later round after the run completed",
      [
        { op: "worker" },
        { op: "forge", task: "batch_finish", roundOffset: 1, chunkNo: 0, key: "own", maxAttempts: 25 },
        { op: "worker" },
      ],
    ],
    [
      "a chunk's job replaced by hand with one attempt, taken by a worker that died before starting it",
      // (seed -30827550, path 38)
      [
        { op: "forge", task: "batch_chunk", roundOffset: -1, chunkNo: 2, key: "own", maxAttempts: 1 },
        { op: "job", pick: 4 },
        { op: "job", pick: 3 },
        { op: "finish", roundOffset: 0 },
        { op: "finish", roundOffset: 1 },
        { op: "job", pick: 2 },
        { op: "kill", startsChunk: false },
        { op: "forge", task: "batch_chunk", roundOffset: 1, chunkNo: 2, key: "none", maxAttempts: 1 },
        { op: "finish", roundOffset: 1 },
        { op: "finish", roundOffset: -1 },
        { op: "worker" },
      ],
    ],
    [
      "a chunk the run does not have",
      [
        { op: "forge", task: "batch_chunk", roundOffset: 0, chunkNo: 4, key: "none", maxAttempts: 25 },
        { op: "worker" },
      ],
    ],
    [
      "a chunk job under the key of a waiting finish, which takes the finish's job",
      [
        // the plan's job (a replay: the start planned) and the round's three chunks
        { op: "job", pick: 0 },
        { op: "job", pick: 0 },
        { op: "job", pick: 0 },
        { op: "job", pick: 0 },
        { op: "forge", task: "batch_chunk", roundOffset: 0, chunkNo: 0, key: "other", maxAttempts: 25 },
        { op: "job", pick: 0 },
      ],
    ],
    [
      "a forged finish under a chunk's key, which takes that chunk's job",
      [
        { op: "forge", task: "batch_finish", roundOffset: 0, chunkNo: 0, key: "other", maxAttempts: 1 },
        { op: "worker" },
      ],
    ],
    [
      "retries of the failed rows of a run that completed, twice in a row, beside a finish forged for the next round",
      [
        ...roundsFailingRows,
        { op: "forge", task: "batch_finish", roundOffset: 1, chunkNo: 0, key: "own", maxAttempts: 25 },
        { op: "retry" },
        { op: "retry" },
        { op: "job", pick: 0 },
        { op: "worker" },
        { op: "retry" },
      ],
    ],
    [
      "a retry's round paused, cancelled, then retried and resumed",
      [
        ...roundsFailingRows,
        { op: "retry" },
        { op: "pause" },
        { op: "cancel" },
        { op: "worker" },
        { op: "retry" },
        { op: "resume" },
      ],
    ],
    // failures the property found (in its test harness), as the operations of their counterexamples
    [
      "jobs added after the run completed (seed 1756031898, path 5, before the job operation existed)",
      [
        { op: "worker" },
        { op: "forge", task: "batch_chunk", roundOffset: -1, chunkNo: 4, key: "own", maxAttempts: 1 },
        { op: "finish", roundOffset: 0 },
        { op: "cancel" },
        { op: "chunk", roundOffset: -1, chunkNo: 0 },
        { op: "forge", task: "batch_plan", roundOffset: 0, chunkNo: 0, key: "other", maxAttempts: 1 },
      ],
    ],
    [
      "a finish called while its own job waits, then a worker (seed -1739331407, path 17)",
      [
        { op: "job", pick: 1 },
        { op: "job", pick: 4 },
        { op: "chunk", roundOffset: 1, chunkNo: 3 },
        { op: "finish", roundOffset: -1 },
        { op: "job", pick: 4 },
        { op: "job", pick: 3 },
        { op: "finish", roundOffset: -1 },
      ],
    ],
  ])("keeps every invariant: %s", (_name, steps) => scenario(steps));
});
