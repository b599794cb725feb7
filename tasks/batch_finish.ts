import { getConfig } from "../src/config/config";
import { FinishPayload } from "../src/runs/payloads";
import { batchTask } from "../src/worker/batch-task";
import { taskDb } from "../src/worker/task-context";
import { finishRound } from "../workflows/finish-round";

/** Workflow step: fan-in after a round's last chunk; starts a retry round or ends the run. */
export default batchTask(FinishPayload, async ({ run, round }, helpers) => {
  await finishRound(taskDb(helpers), run, round, getConfig().podName);
});
