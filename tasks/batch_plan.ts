import { getConfig } from "../src/config/config";
import { PlanPayload } from "../src/runs/payloads";
import { batchTask } from "../src/worker/batch-task";
import { taskDb } from "../src/worker/task-context";
import { planRun } from "../workflows/plan-run";

/** Workflow step: plan a started run and fan out its chunk jobs. */
export default batchTask(PlanPayload, async ({ run }, helpers) => {
  await planRun(taskDb(helpers), run, getConfig().podName);
});
