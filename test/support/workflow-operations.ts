import fc from "fast-check";
import { Logger, runOnce } from "graphile-worker";
import type pg from "pg";
import { taskList } from "../../app/task-list";
import { beginChunk } from "../../src/chunks/chunk-start";
import { parseConfig } from "../../src/config/config";
import { withPool } from "../../src/db/pool";
import { ForgedQueueJobError, RunMissingError } from "../../src/runs/errors";
import { queueJobKeys } from "../../src/runs/job-queue";
import { ChunkPayload } from "../../src/runs/payloads";
import {
  cancelRun,
  pauseRun,
  RunNotFoundError,
  resumeRun,
  retryRun,
  SignalRefusedError,
} from "../../workflows/batch-control";
import { runChunkQueueJob } from "../../workflows/chunk-activity";
import { finishRound } from "../../workflows/finish-round";
import { planRun } from "../../workflows/plan-run";
import { healStrandedWork } from "../../workflows/recovery";
import { NothingToProcessError, RunConflictError, runSettings, startRun } from "../../workflows/start-run";
import { inProcessDeps } from "./in-process";
import { usersJob } from "./jobs";
import { runOneJob } from "./one-job";
import { waitFor } from "./runs";
import { nothingStranded } from "./workflow-invariants";

/**
 * Operations on batch runs, legitimate and hostile, for test/db/workflow-properties.test.ts: the
 * commands a user gives (a retry of an ended run's failed rows among them), the jobs a worker runs (in this process: graphile-worker's runOnce with
 * the project's tasks, or a step or chunk called directly), jobs added by hand (duplicated,
 * forged, or under another job's key), and workers that die holding a chunk.
 */

const NAMES = ["a", "b", "c"] as const;
const TASK_NAMES = ["batch_plan", "batch_finish", "batch_chunk"] as const;
/** Rounds relative to the run's current one; chunks beyond the 3 a round has at most. */
const roundOffset = fc.integer({ min: -1, max: 1 });
const chunkNo = fc.integer({ min: 0, max: 4 });

export type Operation =
  | { op: "start"; name: (typeof NAMES)[number] }
  | { op: "pause" | "resume" | "cancel" | "retry" | "plan" | "worker" | "recover" }
  /** A worker takes a chunk job and dies, before or after it started the chunk. */
  | { op: "kill"; startsChunk: boolean }
  /** One due job, chosen by `pick` among them, run as a worker would. */
  | { op: "job"; pick: number }
  | { op: "finish"; roundOffset: number }
  | { op: "chunk"; roundOffset: number; chunkNo: number }
  | {
      op: "forge";
      task: (typeof TASK_NAMES)[number];
      roundOffset: number;
      chunkNo: number;
      /** none: no key; own: the key of the job's own target; other: the key of another job of the run */
      key: "none" | "own" | "other";
      maxAttempts: 1 | 25;
    };

export const operation: fc.Arbitrary<Operation> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("start" as const), name: fc.constantFrom(...NAMES) }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constantFrom("pause" as const, "resume" as const, "cancel" as const) }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant("retry" as const) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constantFrom("plan" as const, "recover" as const) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("kill" as const), startsChunk: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("worker" as const) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("job" as const), pick: fc.nat(4) }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant("finish" as const), roundOffset }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("chunk" as const), roundOffset, chunkNo }), weight: 3 },
  {
    arbitrary: fc.record({
      op: fc.constant("forge" as const),
      task: fc.constantFrom(...TASK_NAMES),
      roundOffset,
      chunkNo,
      key: fc.constantFrom("none" as const, "own" as const, "other" as const),
      maxAttempts: fc.constantFrom(1 as const, 25 as const),
    }),
    weight: 3,
  },
);

/** Errors an operation may end with: refusals, each a clear answer to a request that makes no sense. */
const REFUSALS = [
  ForgedQueueJobError,
  RunMissingError,
  RunConflictError,
  NothingToProcessError,
  SignalRefusedError,
  RunNotFoundError,
];

/** The rows of a chunk: few, as the property is about the workflow's steps, not the rows' work. */
export const CHUNK_ROWS = 20;
const SETTINGS = runSettings(
  parseConfig({ CHUNK_SIZE: String(CHUNK_ROWS), MAX_ATTEMPTS: "3", RETRY_DELAY_S: "0", CHUNK_MAX_ATTEMPTS: "3" }),
  usersJob,
);
export const FAIL_RATE = 0.2;
const GHOST = "ghost-worker";
const silent = new Logger(() => () => undefined);

interface LatestRun {
  id: number;
  status: string;
  round: number;
}

/** Applies operations to the runs of one database, as users, workers and forgers would. */
export class WorkflowDriver {
  private readonly db;
  private readonly deps;

  constructor(private readonly pool: pg.Pool) {
    this.db = withPool(pool);
    this.deps = inProcessDeps(pool, FAIL_RATE);
  }

  /** Runs `operation`; a refusal is an answer, anything else thrown is a failure of the property. */
  async apply(operation: Operation): Promise<string> {
    try {
      return await this.perform(operation);
    } catch (error) {
      if (REFUSALS.some((refusal) => error instanceof refusal)) return `refused: ${(error as Error).message}`;
      throw error;
    }
  }

  /**
   * Ends what is left: dead workers' jobs released, a paused run resumed, workers run until no
   * run is active and no job is due.
   */
  async settle(): Promise<string[]> {
    await this.apply({ op: "recover" });
    if ((await this.latestRun())?.status === "paused") await this.apply({ op: "resume" });
    for (let pass = 0; pass === 0 || (pass < 10 && (await this.activeRun())); pass++) {
      await this.apply({ op: "worker" });
    }
    const problems: string[] = [];
    const run = await this.latestRun();
    // nothing here fails a chunk for good: a failed run would be a forged job's doing
    if (run && !["completed", "cancelled"].includes(run.status)) {
      problems.push(`run ${run.id} is ${run.status} after the workers ran`);
    }
    const { rows: jobs } = await this.pool.query(
      `SELECT task_identifier, key, attempts, locked_by, last_error FROM graphile_worker.jobs
        WHERE attempts < max_attempts OR locked_at IS NOT NULL`,
    );
    if (jobs.length > 0) problems.push(`job(s) left to run: ${JSON.stringify(jobs)}`);
    const { rows: work } = await this.pool.query(
      "SELECT count(*)::int AS n FROM users WHERE batch_status = 'pending' OR (batch_status = 'failed' AND attempts < $1)",
      [SETTINGS.maxAttempts],
    );
    if (run?.status === "completed" && work[0].n > 0)
      problems.push(`run ${run.id} completed with ${work[0].n} rows left`);
    return problems;
  }

  private async perform(operation: Operation): Promise<string> {
    if (operation.op === "start") return this.start(operation.name);
    if (operation.op === "worker") return this.runWorker();
    if (operation.op === "job") return runOneJob(this.pool, operation.pick, silent);
    if (operation.op === "recover") return this.recover();
    const run = await this.latestRun();
    if (!run) return "no run";
    const round = "roundOffset" in operation ? Math.max(0, run.round + operation.roundOffset) : run.round;
    switch (operation.op) {
      case "pause":
        return (await pauseRun(this.db, `#${run.id}`, "user")).run.status;
      case "resume":
        return (await resumeRun(this.db, `#${run.id}`, "user")).run.status;
      case "cancel":
        return (await cancelRun(this.db, `#${run.id}`, "user")).run.status;
      case "retry": {
        const { run: retried, rows, changed } = await retryRun(this.db, `#${run.id}`, "user");
        return `${retried.status} round ${retried.round}, ${rows} rows${changed ? "" : " (unchanged)"}`;
      }
      case "plan":
        return JSON.stringify((await planRun(this.db, run.id, "caller")).result);
      case "finish": {
        const due = await this.finishDue(run, round);
        const { result, replayed } = await finishRound(this.db, run.id, round, "caller");
        if (!replayed && !due) throw new Error(`finish of round ${round} ran while not due: ${JSON.stringify(result)}`);
        return JSON.stringify(result);
      }
      case "chunk": {
        const ref = { runId: run.id, round, chunkNo: operation.chunkNo };
        const exists = await this.chunkExists(ref);
        const job = { key: queueJobKeys.chunk(run.id, round, operation.chunkNo), attempt: 1, maxAttempts: 3 };
        const { kind } = await runChunkQueueJob(this.deps, ref, job);
        if (!exists) throw new Error(`chunk ${JSON.stringify(ref)}, which does not exist, was not refused: ${kind}`);
        return kind;
      }
      case "forge":
        return this.forge(run, round, operation);
      case "kill":
        return this.kill(run, operation.startsChunk);
    }
  }

  private async start(name: string): Promise<string> {
    const { run } = await startRun(this.db, usersJob, name, SETTINGS, "user");
    if (run.status === "pending" || run.status === "paused") await planRun(this.db, run.id, "user");
    return `run ${run.id}`;
  }

  /** A `--once` pod: recovery first, then every job that is due. */
  private async runWorker(): Promise<string> {
    const recovered = await this.recover();
    await runOnce({ pgPool: this.pool, taskList, concurrency: 1, noHandleSignals: true, logger: silent });
    // runOnce returns before its last job's completion is written (graphile-worker does not await it)
    await waitFor(
      "the last job's completion",
      async () => {
        const { rows } = await this.pool.query(
          "SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE locked_by LIKE 'otpool-%'",
        );
        return rows[0].n === 0;
      },
      5000,
    );
    return recovered;
  }

  /** What live workers do every few seconds: dead workers' jobs released, stranded work healed. */
  private async recover(): Promise<string> {
    await this.pool.query("SELECT graphile_worker.force_unlock_workers(ARRAY[$1])", [GHOST]);
    const healed = await healStrandedWork(this.db, "recovery");
    const stranded = await nothingStranded(this.pool);
    if (stranded.length > 0) throw new Error(`stranded after recovery: ${stranded.join("; ")}`);
    return JSON.stringify(healed);
  }

  private async forge(run: LatestRun, round: number, forged: Extract<Operation, { op: "forge" }>): Promise<string> {
    const targets = {
      batch_plan: { payload: { run: run.id }, key: queueJobKeys.plan(run.id) },
      batch_finish: { payload: { run: run.id, round }, key: queueJobKeys.finish(run.id, round) },
      batch_chunk: {
        payload: { run: run.id, round, chunk: forged.chunkNo },
        key: queueJobKeys.chunk(run.id, round, forged.chunkNo),
      },
    };
    const { payload, key: own } = targets[forged.task];
    // a chunk job under the round's finish key, any other under another chunk's
    const other =
      forged.task === "batch_chunk"
        ? queueJobKeys.finish(run.id, run.round)
        : queueJobKeys.chunk(run.id, run.round, (forged.chunkNo + 1) % 3);
    const key = { none: null, own, other }[forged.key];
    await this.pool.query("SELECT graphile_worker.add_job($1, $2::json, job_key := $3, max_attempts := $4)", [
      forged.task,
      JSON.stringify(payload),
      key,
      forged.maxAttempts,
    ]);
    return `added ${forged.task} ${JSON.stringify(payload)} under ${key}`;
  }

  /** A worker takes a chunk job and dies, its chunk started or not: the job stays locked. */
  private async kill(run: LatestRun, startsChunk: boolean): Promise<string> {
    const { rows } = await this.pool.query<{ id: string; payload: unknown }>(
      `UPDATE graphile_worker._private_jobs SET locked_at = now(), locked_by = $2, attempts = attempts + 1
        WHERE id = (SELECT j.id FROM graphile_worker.jobs j
                     WHERE j.task_identifier = 'batch_chunk' AND j.key LIKE $1 AND j.locked_at IS NULL
                       AND j.attempts < j.max_attempts AND j.run_at <= now()
                     ORDER BY j.id LIMIT 1)
       RETURNING id, payload`,
      [`${queueJobKeys.runPrefix(run.id)}%`, GHOST],
    );
    const parsed = ChunkPayload.safeParse(rows[0]?.payload);
    if (!parsed.success) return "no chunk job to take";
    const ref = { runId: parsed.data.run, round: parsed.data.round, chunkNo: parsed.data.chunk };
    if (!startsChunk) return `died taking the job of chunk ${JSON.stringify(ref)}`;
    const started = await this.db((client) => beginChunk(client, ref, GHOST));
    return `died in chunk ${JSON.stringify(ref)} (${started.kind})`;
  }

  /** Whether the workflow would finish `round` now: its current round, every chunk ended, the run going on. */
  private async finishDue(run: LatestRun, round: number): Promise<boolean> {
    if (!["running", "paused", "cancelling"].includes(run.status) || round !== run.round) return false;
    const { rows } = await this.pool.query(
      "SELECT count(*)::int AS n FROM batch_chunks WHERE run_id = $1 AND round = $2 AND status IN ('queued', 'running')",
      [run.id, round],
    );
    return rows[0].n === 0;
  }

  private async chunkExists(ref: { runId: number; round: number; chunkNo: number }): Promise<boolean> {
    const { rows } = await this.pool.query(
      "SELECT 1 FROM batch_chunks WHERE run_id = $1 AND round = $2 AND chunk_no = $3",
      [ref.runId, ref.round, ref.chunkNo],
    );
    return rows.length > 0;
  }

  private async latestRun(): Promise<LatestRun | undefined> {
    const { rows } = await this.pool.query<LatestRun>(
      "SELECT id, status, round FROM batch_jobs WHERE kind = 'process' ORDER BY id DESC LIMIT 1",
    );
    return rows[0];
  }

  private async activeRun(): Promise<LatestRun | undefined> {
    const run = await this.latestRun();
    return run && !["completed", "failed", "cancelled"].includes(run.status) ? run : undefined;
  }
}
