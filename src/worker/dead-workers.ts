import type pg from "pg";
import { HELD_LOCK_KEYS } from "../db/advisory-locks";
import { appendEvent } from "../runs/events";
import { parseChunkKey, TASKS } from "../runs/job-queue";

/**
 * Taking back the jobs of dead workers. graphile-worker by itself leaves a job locked for four
 * hours when its worker dies without a graceful shutdown (SIGKILL, OOM, node loss); here a
 * worker is declared dead when two independent signs agree:
 *
 * - its liveness session is gone: the session that held its advisory lock (`lock_key`) has
 *   ended. PostgreSQL ends it when the process dies (its connection closes) or, for a vanished
 *   node, when TCP keepalives go unanswered.
 * - its heartbeat is stale: `last_seen` is older than WORKER_DEAD_AFTER_S.
 *
 * A live worker, however slow or busy its business logic, keeps its session, so it is never
 * declared dead; a database restart, which ends every session, leaves live workers' heartbeats
 * fresh. Jobs of our tasks locked by a pool that never registered (it died before it could)
 * are taken back once locked for longer than WORKER_DEAD_AFTER_S.
 */

/** Only one recovery at a time across all workers: the others skip their turn. */
const RECOVERY_LOCK_KEY = 4_171_202_602;

const DEAD_POOLS = `
  SELECT DISTINCT j.locked_by AS pool
    FROM graphile_worker.jobs j
    LEFT JOIN worker_sessions s ON s.pool_id = j.locked_by
   WHERE j.locked_at IS NOT NULL
     AND j.task_identifier = ANY($1::text[])
     AND CASE WHEN s.pool_id IS NULL THEN j.locked_at < now() - make_interval(secs => $2)
              ELSE s.last_seen < now() - make_interval(secs => $2)
                   AND s.lock_key NOT IN (${HELD_LOCK_KEYS}) END`;

export interface Recovered {
  pools: string[];
  /** Queue jobs released. */
  queueJobs: number;
}

/** Finds dead workers and releases their queue jobs for others to take; records it in runs' histories. */
export async function recoverDeadWorkers(
  client: pg.ClientBase,
  options: { deadAfterMs: number; actor: string },
): Promise<Recovered> {
  await client.query("BEGIN");
  try {
    const { rows: locked } = await client.query<{ acquired: boolean }>(
      "SELECT pg_try_advisory_xact_lock($1) AS acquired",
      [RECOVERY_LOCK_KEY],
    );
    if (!locked[0]?.acquired) {
      await client.query("COMMIT");
      return { pools: [], queueJobs: 0 };
    }
    const { rows: dead } = await client.query<{ pool: string }>(DEAD_POOLS, [
      Object.values(TASKS),
      options.deadAfterMs / 1000,
    ]);
    const pools = dead.map((row) => row.pool);
    if (pools.length === 0) {
      await client.query("COMMIT");
      return { pools, queueJobs: 0 };
    }
    const queueJobs = await releaseQueueJobsOf(client, pools, options.actor, "presumed dead");
    await client.query("COMMIT");
    return { pools, queueJobs };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** "worker pod-7 (job pool pool-abc)": its POD_NAME, or only its pool where it never registered. */
function describeWorker(pod: string | null, pool: string): string {
  return pod === null ? `job pool ${pool} (never registered)` : `worker ${pod} (job pool ${pool})`;
}

/**
 * Unlocks every queue job locked by `pools` for other workers to take, forgets those pools, and
 * notes each released chunk in its run's history. Returns the number of queue jobs released.
 */
export async function releaseQueueJobsOf(
  client: pg.ClientBase,
  pools: string[],
  actor: string,
  why: string,
): Promise<number> {
  // the worker's name (POD_NAME) from its registration, before the registration is forgotten
  const { rows: jobs } = await client.query<{ key: string | null; locked_by: string; pod: string | null }>(
    `SELECT j.key, j.locked_by, s.pod
       FROM graphile_worker.jobs j LEFT JOIN worker_sessions s ON s.pool_id = j.locked_by
      WHERE j.locked_by = ANY($1::text[])`,
    [pools],
  );
  await client.query("SELECT graphile_worker.force_unlock_workers($1::text[])", [pools]);
  await client.query("DELETE FROM worker_sessions WHERE pool_id = ANY($1::text[])", [pools]);
  for (const job of jobs) {
    const chunk = job.key ? parseChunkKey(job.key) : undefined;
    if (!chunk) continue;
    await appendEvent(client as pg.PoolClient, chunk.runId, "chunk-recovered", {
      step: "chunk",
      actor,
      round: chunk.round,
      chunkNo: chunk.chunkNo,
      detail: `${describeWorker(job.pod, job.locked_by)} ${why}; chunk released for another worker`,
    });
  }
  return jobs.length;
}
