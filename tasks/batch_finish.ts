import type { Task } from "graphile-worker";
import { getConfig } from "../src/config";
import { FinishPayload } from "../src/runs/payloads";
import { finishRound } from "../workflows/batch-run";

/** Workflow step: fan-in after a round's last chunk; starts a retry round or ends the run. */
const task: Task = async (payload, helpers) => {
  const { run, round } = FinishPayload.parse(payload);
  await finishRound(helpers.withPgClient, run, round, getConfig().podName);
};

export default task;
