import { type Job, type JobHelpers, Logger } from "graphile-worker";
import type pg from "pg";
import { taskList } from "../../app/task-list";
import { withPool } from "../../src/db/pool";

/**
 * Runs one due graphile-worker job in this process, as a worker of one slot would: it is locked
 * and its attempt counted, its task runs with the helpers the project's tasks use, and it is then
 * deleted, or unlocked with its error and graphile-worker's backoff (the SQL of its
 * completeJobs and failJobs). `pick` chooses among the due jobs, so that tests can run them in
 * any order, not only graphile-worker's. Returns the job's task and what became of it.
 */
export async function runOneJob(pool: pg.Pool, pick: number, logger: Logger): Promise<string> {
  const worker = "one-job-worker";
  const { rows } = await pool.query<Job & { task_identifier: string }>(
    `WITH due AS (
       SELECT j.id FROM graphile_worker._private_jobs j
        WHERE j.locked_at IS NULL AND j.attempts < j.max_attempts AND j.run_at <= now()
        ORDER BY j.priority, j.run_at, j.id
     )
     UPDATE graphile_worker._private_jobs j
        SET locked_at = now(), locked_by = $2, attempts = attempts + 1
       FROM graphile_worker._private_tasks t
      WHERE j.id = (SELECT id FROM due OFFSET $1 % greatest((SELECT count(*) FROM due), 1) LIMIT 1)
        AND t.id = j.task_id
     RETURNING j.*, t.identifier AS task_identifier`,
    [pick, worker],
  );
  const job = rows[0];
  if (!job) return "no job due";
  const task = taskList[job.task_identifier];
  if (!task) throw new Error(`no task ${job.task_identifier}`);
  const helpers = {
    job,
    logger,
    withPgClient: withPool(pool),
    addJob: (identifier: string, payload: unknown, spec: { jobKey?: string; maxAttempts?: number } = {}) =>
      pool.query("SELECT graphile_worker.add_job($1, $2::json, job_key := $3, max_attempts := $4)", [
        identifier,
        JSON.stringify(payload),
        spec.jobKey ?? null,
        spec.maxAttempts ?? null,
      ]),
  } as unknown as JobHelpers;
  const ran = `${job.task_identifier} ${JSON.stringify(job.payload)}`;
  try {
    await task(job.payload, helpers);
  } catch (error) {
    await pool.query(
      `UPDATE graphile_worker._private_jobs
          SET last_error = $2, run_at = greatest(now(), run_at) + exp(least(attempts, 10)) * interval '1 second',
              locked_by = NULL, locked_at = NULL
        WHERE id = $1 AND locked_by = $3`,
      [job.id, String(error), worker],
    );
    return `${ran} failed: ${String(error)}`;
  }
  await pool.query("DELETE FROM graphile_worker._private_jobs WHERE id = $1", [job.id]);
  return `${ran} done`;
}

const silent = new Logger(() => () => undefined);

/**
 * Runs due jobs one at a time, in graphile-worker's order, until none is due (or `most` have
 * run); returns what became of each. A job failed into its backoff is not due: it stays.
 */
export async function runDueJobs(pool: pg.Pool, most = 500): Promise<string[]> {
  const ran: string[] = [];
  while (ran.length < most) {
    const outcome = await runOneJob(pool, 0, silent);
    if (outcome === "no job due") break;
    ran.push(outcome);
  }
  return ran;
}
