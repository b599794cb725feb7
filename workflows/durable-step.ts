import type { PoolClient } from "pg";
import { inTransaction, type WithClient } from "../src/db/pool";
import type { Run } from "../src/runs/model";
import { lockRun } from "../src/runs/runs";
import { findStepResult, recordStep } from "../src/runs/steps";

export interface StepRef {
  runId: number;
  step: string;
  round: number;
}

/**
 * Runs a workflow step exactly once. The step's body, its record in batch_steps and whatever
 * it starts next (jobs, status) commit in one transaction, under the run's row lock. Running
 * the step again (a retried or duplicated job, a resumed workflow) returns the recorded result
 * without running the body.
 */
export async function durableStep<T>(
  db: WithClient,
  ref: StepRef,
  worker: string,
  body: (client: PoolClient, run: Run) => Promise<T>,
): Promise<{ result: T; replayed: boolean }> {
  return db((client) => inTransaction(client, () => durableStepIn(client, ref, worker, body)));
}

/** durableStep in a transaction the caller holds: the step commits with the caller's own work. */
export async function durableStepIn<T>(
  client: PoolClient,
  ref: StepRef,
  worker: string,
  body: (client: PoolClient, run: Run) => Promise<T>,
): Promise<{ result: T; replayed: boolean }> {
  const run = await lockRun(client, ref.runId);
  const recorded = await findStepResult(client, ref.runId, ref.step, ref.round);
  if (recorded) return { result: recorded.result as T, replayed: true };
  const result = await body(client, run);
  await recordStep(client, ref.runId, ref.step, ref.round, result, worker);
  return { result, replayed: false };
}
