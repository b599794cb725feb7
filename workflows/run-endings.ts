import type { PoolClient } from "pg";
import { countOpenChunks } from "../src/runs/chunks";
import { appendEvent } from "../src/runs/events";
import type { Run } from "../src/runs/model";
import { endRun, setRunStatus } from "../src/runs/runs";

/** How a run ends well: completed by its plan or its last finish, or cancelled once its chunks have ended. */

export async function completeRun(client: PoolClient, runId: number, actor: string): Promise<void> {
  await endRun(client, runId, { status: "completed" });
  await appendEvent(client, runId, "completed", { step: "finish", actor });
}

/** A cancelling run becomes cancelled once every one of its chunks has ended. */
export async function settleCancellation(client: PoolClient, run: Run, actor: string): Promise<boolean> {
  if (run.status !== "cancelling" || (await countOpenChunks(client, run.id)) > 0) return false;
  await setRunStatus(client, run.id, "cancelled");
  await appendEvent(client, run.id, "cancelled", { step: "control", actor });
  return true;
}
