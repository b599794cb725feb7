import type pg from "pg";
import { tally } from "./runs";

/**
 * What must hold of batch runs at every moment, whatever jobs were added, duplicated or forged:
 * checked by test/db/workflow-properties.test.ts after each operation. Each check returns the
 * problems it found, as sentences. An ended run changes only when a retry takes it up again
 * (its event `retried`), and then ends once more.
 */

const MAX_ATTEMPTS = 3;

async function rows<T extends pg.QueryResultRow>(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<T[]> {
  return (await pool.query<T>(sql, values)).rows;
}

/** The latest run's counters equal its rows in users; every run's completed count equals its completed rows. */
async function countersAgree(pool: pg.Pool): Promise<string[]> {
  const runs = await rows<{ id: number; name: string; processed: number; completed: number }>(
    pool,
    `SELECT r.id, r.batch_name AS name, r.processed_records AS processed,
            (SELECT count(*)::int FROM users u WHERE u.batch_id = r.id AND u.batch_status = 'completed') AS completed
       FROM batch_jobs r WHERE r.kind = 'process' ORDER BY r.id`,
  );
  const problems = runs
    .filter((run) => run.processed !== run.completed)
    .map((run) => `run ${run.id} counts ${run.processed} completed rows, users has ${run.completed}`);
  const latest = runs.at(-1);
  if (latest) {
    // earlier runs' failed rows with attempts left may have been taken up by a later run
    const counts = await tally(pool, latest.name, MAX_ATTEMPTS);
    if (counts.run.failed_records !== counts.failed || counts.run.retryable_records !== counts.retryable) {
      problems.push(
        `run ${latest.id} counts ${counts.run.failed_records} failed and ${counts.run.retryable_records} retryable, ` +
          `users has ${counts.failed} and ${counts.retryable}`,
      );
    }
  }
  return problems;
}

/** Each fan-in, ending and chunk ending happens once; each recorded finish found its round ended. */
async function onceEach(pool: pg.Pool): Promise<string[]> {
  const repeated = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s: %s x%s (round %s, chunk %s)', run_id, event, count(*), round, chunk_no) AS what
       FROM batch_events
      WHERE event IN ('round-ended', 'retry-round', 'chunk-done', 'chunk-failed', 'chunk-cancelled')
      GROUP BY run_id, event, round, chunk_no
     HAVING count(*) > 1`,
  );
  const endings = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s has %s endings and %s retries', run_id, count(*) FILTER (WHERE event <> 'retried'),
                   count(*) FILTER (WHERE event = 'retried')) AS what
       FROM batch_events
      WHERE event IN ('completed', 'failed', 'cancelled', 'retried') GROUP BY run_id
     HAVING count(*) FILTER (WHERE event <> 'retried') > 1 + count(*) FILTER (WHERE event = 'retried')`,
  );
  const retries = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s: %s retries of round %s', run_id, count(*), round) AS what FROM batch_events
      WHERE event = 'retried' GROUP BY run_id, round HAVING count(*) > 1`,
  );
  const early = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s: finish %s recorded with chunk %s %s', s.run_id, s.round, c.chunk_no, c.status) AS what
       FROM batch_steps s JOIN batch_chunks c ON c.run_id = s.run_id AND c.round = s.round
      WHERE s.step = 'finish' AND c.status IN ('queued', 'running', 'deferred')`,
  );
  return [...repeated, ...endings, ...retries, ...early].map((row) => row.what);
}

/** Chunks that have not ended belong to the current round of a run that has not ended; rows are sane. */
async function openChunksBelong(pool: pg.Pool): Promise<string[]> {
  const misplaced = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s (%s, round %s) has chunk %s of round %s %s', r.id, r.status, r.round,
                   c.chunk_no, c.round, c.status) AS what
       FROM batch_chunks c JOIN batch_jobs r ON r.id = c.run_id
      WHERE c.status IN ('queued', 'running', 'deferred')
        AND (r.status IN ('completed', 'failed', 'cancelled', 'pending') OR c.round <> r.round)`,
  );
  const users = await rows<{ what: string }>(
    pool,
    `SELECT format('%s users rows processing or over %s attempts', count(*), $1::int) AS what FROM users
      WHERE batch_status = 'processing' OR attempts > $1 HAVING count(*) > 0`,
    [MAX_ATTEMPTS],
  );
  return [...misplaced, ...users].map((row) => row.what);
}

/**
 * After recovery has run: no work is left without a job. Every chunk that has not ended, of a
 * run that is not paused, has a live job under its key; every step that is due has one too.
 */
export async function nothingStranded(pool: pg.Pool): Promise<string[]> {
  const liveJob = (key: string) => `EXISTS (
    SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${key} AND (j.locked_at IS NOT NULL OR j.attempts < j.max_attempts))`;
  const chunks = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s (%s): chunk %s of round %s is %s without a job', r.id, r.status, c.chunk_no, c.round,
                   c.status) AS what
       FROM batch_chunks c JOIN batch_jobs r ON r.id = c.run_id
      WHERE c.status IN ('queued', 'running') AND r.status <> 'paused'
        AND NOT ${liveJob("format('batch:%s:%s:chunk:%s', c.run_id, c.round, c.chunk_no)")}`,
  );
  const finishes = await rows<{ what: string }>(
    pool,
    `SELECT format('run %s (%s): round %s ended without a finish job', r.id, r.status, r.round) AS what
       FROM batch_jobs r
      WHERE r.status IN ('running', 'paused')
        AND NOT EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = 'finish' AND s.round = r.round)
        AND NOT EXISTS (SELECT 1 FROM batch_chunks c
                         WHERE c.run_id = r.id AND c.round = r.round AND c.status IN ('queued', 'running'))
        AND EXISTS (SELECT 1 FROM batch_steps s WHERE s.run_id = r.id AND s.step = 'plan')
        AND NOT ${liveJob("format('batch:%s:%s:finish', r.id, r.round)")}`,
  );
  return [...chunks, ...finishes].map((row) => row.what);
}

/** Everything of a run that must not change once it has ended, until a retry, as JSON. */
async function endedRuns(pool: pg.Pool): Promise<Map<number, string>> {
  const ended = await rows<{ id: number; state: unknown }>(
    pool,
    `SELECT r.id, json_build_object(
              'retries', (SELECT count(*) FROM batch_events e WHERE e.run_id = r.id AND e.event = 'retried'),
              'run', to_jsonb(r),
              'chunks', (SELECT json_agg(c ORDER BY c.round, c.chunk_no) FROM batch_chunks c WHERE c.run_id = r.id),
              'steps', (SELECT json_agg(s ORDER BY s.step, s.round) FROM batch_steps s WHERE s.run_id = r.id),
              'events', (SELECT json_agg(e ORDER BY e.id) FROM batch_events e
                          WHERE e.run_id = r.id AND e.event <> 'job-refused')) AS state
       FROM batch_jobs r WHERE r.kind = 'process' AND r.status IN ('completed', 'failed', 'cancelled')`,
  );
  return new Map(ended.map((run) => [run.id, JSON.stringify(run.state)]));
}

/** Checks every invariant; `seenEnded` carries the ended runs' states from one check to the next. */
export async function checkInvariants(pool: pg.Pool, seenEnded: Map<number, string>): Promise<string[]> {
  const problems = [...(await countersAgree(pool)), ...(await onceEach(pool)), ...(await openChunksBelong(pool))];
  const ended = await endedRuns(pool);
  const { rows: retried } = await pool.query<{ id: number; retries: number }>(
    "SELECT run_id AS id, count(*)::int AS retries FROM batch_events WHERE event = 'retried' GROUP BY run_id",
  );
  const retriesOf = new Map(retried.map((run) => [run.id, run.retries]));
  for (const [id, before] of seenEnded) {
    const now = ended.get(id);
    // taken up again by a retry: watched anew once it ends again
    if (JSON.parse(before).retries < (retriesOf.get(id) ?? 0)) {
      seenEnded.delete(id);
      if (now !== undefined) seenEnded.set(id, now);
    } else if (now === undefined) problems.push(`run ${id} is no longer ended`);
    else if (now !== before) problems.push(`run ${id} changed after it ended`);
  }
  for (const [id, state] of ended) if (!seenEnded.has(id)) seenEnded.set(id, state);
  return problems;
}
