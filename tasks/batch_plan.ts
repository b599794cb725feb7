import { getConfig } from "../src/config";
import { PlanPayload } from "../src/runs/payloads";
import { batchTask } from "../src/worker/batch-task";
import { planRun } from "../workflows/batch-run";

/** Workflow step: plan a started run and fan out its chunk jobs. */
export default batchTask(PlanPayload, async ({ run }, helpers) => {
  await planRun(helpers.withPgClient, run, getConfig().podName);
});
