import type { PoolClient } from "pg";
import { chunkQueueJobKeySql } from "../runs/job-queue";
import type { RunSubset } from "../runs/model";
import { type RunThrottle, readRunThrottle } from "../runs/throttle-state";

/**
 * What `status` shows, read with a few cheap queries: the batch_progress view (run counters
 * and samples), the run's chunks of its current round and their jobs, its workers and errors.
 * None reads users, so watching a 50M-row run every second costs the database next to nothing.
 */

export interface RunProgress {
  id: number;
  name: string;
  /** The job (jobs/*.ts) the run runs. */
  job: string;
  status: string;
  round: number;
  total: number;
  completed: number;
  failed: number;
  retrying: number;
  pending: number;
  percentDone: number | null;
  rowsPerSecond: number | null;
  etaSeconds: number | null;
  startedAt: Date;
  completedAt: Date | null;
  /** Set while a running run waits (a retry round's delay, chunks backing off): when its first chunk is due. */
  waitingUntil: Date | null;
  /** The seconds until then, by the database's clock. */
  waitingSeconds: number | null;
  /** Running, and its workers wait on the database's health (batch_throttled_runs). */
  throttled: boolean;
}

export interface ChunkStates {
  total: number;
  done: number;
  failed: number;
  cancelled: number;
  running: number;
  waiting: number;
  retrying: number;
}

/**
 * The rate limit the run's job ran under last, across every worker (sql/migrations/018): the
 * tokens granted and the time chunks waited for them, over every run of the job.
 */
export interface RateLimitState {
  perSecond: number;
  burst: number;
  tokensGranted: number;
  waitedSeconds: number;
  /** When a worker last took tokens. */
  lastTakenAt: Date;
}

export interface RunReport extends RunProgress {
  /** The parameters the run was started with, as given ({}: none). */
  params: Record<string, unknown>;
  /** The part of the job's rows the run takes; null: all of them. */
  subset: RunSubset | null;
  /** null: the job has never run under a rate limit. */
  rateLimit: RateLimitState | null;
  /** Seconds this run's chunks waited for its job's rate limit, summed over chunks. */
  rateLimitWaitedSeconds: number;
  chunks: ChunkStates;
  workers: { worker: string; runningChunks: number; rows: number }[];
  /** Failed attempts by message: how often each occurred, rows retried later included. */
  errors: { message: string; occurrences: number; lastSeen: Date }[];
  /** What its workers wait on while it is throttled: the signal, its figure against its threshold, since when. */
  throttle: RunThrottle | null;
  /**
   * Chunks of the round whose rows another session keeps locked (an application's transaction
   * left idle, say): the run cannot complete until it ends them. As their workers last saw them.
   */
  rowsHeld: { chunkNo: number; rows: number; pid: number; since: Date; state: string | null }[];
  /** The run's canary (`seed enqueue --canary N`); null without one. */
  canary: CanaryState | null;
}

/** A canary's rows, and once it has ended (the run paused itself), what became of them. */
export interface CanaryState {
  rows: number;
  ended: { rows: number; failed: number; at: Date } | null;
}

const PROGRESS_COLUMNS = `
  id, batch_name AS name, (SELECT b.job FROM batch_jobs b WHERE b.id = batch_progress.id) AS job, status, round, total, completed, failed, retrying, pending,
  percent_done::float8 AS "percentDone", rows_per_second::float8 AS "rowsPerSecond", eta_seconds AS "etaSeconds",
  started_at AS "startedAt", completed_at AS "completedAt", waiting_until AS "waitingUntil",
  greatest(ceil(extract(epoch FROM waiting_until - now())), 0)::int AS "waitingSeconds",
  status = 'running' AND EXISTS (SELECT 1 FROM batch_throttled_runs t WHERE t.run_id = batch_progress.id) AS throttled`;

export async function readRunsOverview(client: PoolClient, limit = 20): Promise<RunProgress[]> {
  const { rows } = await client.query<RunProgress>(
    `SELECT ${PROGRESS_COLUMNS} FROM batch_progress ORDER BY id DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

export async function readRunReport(client: PoolClient, runId: number): Promise<RunReport | undefined> {
  const { rows } = await client.query<RunProgress>(`SELECT ${PROGRESS_COLUMNS} FROM batch_progress WHERE id = $1`, [
    runId,
  ]);
  const progress = rows[0];
  if (!progress) return undefined;
  const chunks = await client.query<ChunkStates>(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE c.status = 'done')::int AS done,
            count(*) FILTER (WHERE c.status = 'failed')::int AS failed,
            count(*) FILTER (WHERE c.status = 'cancelled')::int AS cancelled,
            count(*) FILTER (WHERE q.locked_at IS NOT NULL)::int AS running,
            count(*) FILTER (WHERE c.status IN ('queued', 'running') AND q.locked_at IS NULL
                               AND coalesce(q.attempts, 0) = 0)::int AS waiting,
            count(*) FILTER (WHERE c.status IN ('queued', 'running') AND q.locked_at IS NULL
                               AND q.attempts > 0)::int AS retrying
       FROM batch_chunks c
       LEFT JOIN graphile_worker.jobs q ON q.key = ${chunkQueueJobKeySql("c")}
      WHERE c.run_id = $1 AND c.round = $2`,
    [runId, progress.round],
  );
  const workers = await client.query<{ worker: string; runningChunks: number; rows: number }>(
    `SELECT worker, running_chunks AS "runningChunks", rows::float8 AS rows
       FROM batch_workers WHERE run_id = $1
      ORDER BY running_chunks DESC, rows DESC LIMIT 5`,
    [runId],
  );
  // batch_errors.attempts counts the failed attempts with that message
  const errors = await client.query<{ message: string; occurrences: number; lastSeen: Date }>(
    `SELECT message, attempts AS occurrences, last_seen AS "lastSeen" FROM batch_errors
      WHERE run_id = $1 ORDER BY attempts DESC, last_seen DESC LIMIT 5`,
    [runId],
  );
  const rateLimit = await client.query<RateLimitState & { runWaitedSeconds: number }>(
    `SELECT per_second AS "perSecond", burst, granted_total::float8 AS "tokensGranted",
            waited_seconds_total AS "waitedSeconds", refilled_at AS "lastTakenAt",
            (SELECT b.rate_limit_waited_seconds FROM batch_jobs b WHERE b.id = $2) AS "runWaitedSeconds"
       FROM batch_rate_limits WHERE job = $1`,
    [progress.job, runId],
  );
  const { runWaitedSeconds = 0, ...jobLimit } = rateLimit.rows[0] ?? {};
  const inputs = await client.query<{ params: Record<string, unknown>; subset: RunSubset | null }>(
    `SELECT coalesce(config -> 'params', '{}') AS params, config -> 'subset' AS subset FROM batch_jobs WHERE id = $1`,
    [runId],
  );
  const rowsHeld = await client.query<RunReport["rowsHeld"][number]>(
    `SELECT chunk_no AS "chunkNo", held_rows AS rows, held_by_pid AS pid, held_since AS since, held_state AS state
       FROM batch_chunks
      WHERE run_id = $1 AND round = $2 AND status IN ('queued', 'running') AND held_rows IS NOT NULL
      ORDER BY held_since, chunk_no LIMIT 5`,
    [runId, progress.round],
  );
  // the canary's end is an event of the run's history (workflows/chunk-activity.ts)
  const canary = await client.query<CanaryState>(
    `SELECT (b.config ->> 'canary')::int AS rows,
            (SELECT json_build_object('rows', (e.counts ->> 'canaryRows')::int,
                                      'failed', (e.counts ->> 'canaryFailed')::int, 'at', e.at)
               FROM batch_events e WHERE e.run_id = b.id AND e.event = 'canary-ended'
              ORDER BY e.id DESC LIMIT 1) AS ended
       FROM batch_jobs b WHERE b.id = $1 AND b.config ? 'canary'`,
    [runId],
  );
  const canaryState = canary.rows[0];
  if (canaryState?.ended) canaryState.ended.at = new Date(canaryState.ended.at);
  return {
    ...progress,
    params: inputs.rows[0]?.params ?? {},
    subset: inputs.rows[0]?.subset ?? null,
    canary: canaryState ?? null,
    rowsHeld: rowsHeld.rows,
    rateLimit: rateLimit.rows[0] ? (jobLimit as RateLimitState) : null,
    rateLimitWaitedSeconds: runWaitedSeconds,
    chunks: chunks.rows[0] as ChunkStates,
    workers: workers.rows,
    errors: errors.rows,
    throttle: progress.throttled ? await readRunThrottle(client, runId) : null,
  };
}
