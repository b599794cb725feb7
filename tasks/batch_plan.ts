import type { Task } from "graphile-worker";
import { getConfig } from "../src/config";
import { PlanPayload } from "../src/runs/payloads";
import { planRun } from "../workflows/batch-run";

/** Workflow step: plan a started run and fan out its chunk jobs. */
const task: Task = async (payload, helpers) => {
  const { run } = PlanPayload.parse(payload);
  await planRun(helpers.withPgClient, run, getConfig().podName);
};

export default task;
