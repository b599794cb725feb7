import type { PoolClient } from "pg";

/**
 * What outlives a worker pod, from the database: how many runs of each job are in each status,
 * and the backlog (the chunks KEDA's trigger reads, and the rows they hold). Two reads of small tables and views (a row per run, never
 * a job's table), taking no lock beyond their snapshot: cheap at every scrape.
 */

export interface RunTotals {
  runs: { job: string; status: string; runs: number }[];
  backlog: { job: string; rowsLeft: number; chunksLeft: number }[];
}

export async function readRunTotals(client: PoolClient): Promise<RunTotals> {
  const runs = await client.query<RunTotals["runs"][number]>(
    `SELECT job, status, count(*)::int AS runs FROM batch_jobs WHERE kind = 'process' GROUP BY job, status`,
  );
  const backlog = await client.query<RunTotals["backlog"][number]>(
    `SELECT job, rows_left::float8 AS "rowsLeft", chunks_left::float8 AS "chunksLeft" FROM batch_backlog_by_job`,
  );
  return { runs: runs.rows, backlog: backlog.rows };
}
