import type { TaskList } from "graphile-worker";
import { TASKS } from "../src/runs/job-queue";
import batchChunk from "../tasks/batch_chunk";
import batchFinish from "../tasks/batch_finish";
import batchPlan from "../tasks/batch_plan";
import batchSchedule from "../tasks/batch_schedule";

/** The task modules of tasks/, for runners started in-process (the CLI reads the directory). */
export const taskList: TaskList = {
  [TASKS.plan]: batchPlan,
  [TASKS.chunk]: batchChunk,
  [TASKS.finish]: batchFinish,
  [TASKS.schedule]: batchSchedule,
};
