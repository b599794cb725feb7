import type { PoolClient } from "pg";

/** The SQL of a run's memoised workflow steps (batch_steps): each step's result, recorded once. */

export async function findStepResult(
  client: PoolClient,
  runId: number,
  step: string,
  round: number,
): Promise<{ result: unknown } | undefined> {
  const { rows } = await client.query<{ result: unknown }>(
    "SELECT result FROM batch_steps WHERE run_id = $1 AND step = $2 AND round = $3",
    [runId, step, round],
  );
  return rows[0];
}

export async function recordStep(
  client: PoolClient,
  runId: number,
  step: string,
  round: number,
  result: unknown,
  worker: string,
): Promise<void> {
  await client.query("INSERT INTO batch_steps (run_id, step, round, result, worker) VALUES ($1, $2, $3, $4, $5)", [
    runId,
    step,
    round,
    JSON.stringify(result),
    worker,
  ]);
}

/**
 * The round the run's rows last got their attempts from: 0, or the round its latest retry
 * command started (a step of its own, "retry"). Retry rounds and their delays count from it.
 */
export async function attemptsRound(client: PoolClient, runId: number): Promise<number> {
  const { rows } = await client.query<{ round: number }>(
    "SELECT coalesce(max(round), 0) AS round FROM batch_steps WHERE run_id = $1 AND step = 'retry'",
    [runId],
  );
  return rows[0]?.round ?? 0;
}
