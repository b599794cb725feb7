import { getConfig } from "../src/config/config";
import { getCatalog, getLogger } from "../src/config/context";
import { SchedulePayload } from "../src/runs/payloads";
import { batchTask } from "../src/worker/batch-task";
import { taskDb } from "../src/worker/task-context";
import { decideTicks, leaveTick } from "../workflows/schedule-tick";

/** Workflow step: decide a scheduled job's due tick (start its run, or record why not), then queue the next. */
export default batchTask(SchedulePayload, async ({ job: name }, helpers) => {
  const db = taskDb(helpers);
  // the database's clock, which the queue's run_at is read against, rather than this pod's
  const { rows } = await db((client) => client.query<{ now: Date }>("SELECT now() AS now"));
  const now = rows[0]?.now ?? new Date();
  const job = getCatalog().jobs.find((known) => known.name === name);
  if (!job?.schedule) {
    // a worker of another release, in a rolling release: neither decided nor dropped
    const dueAgain = await leaveTick(db, name, now);
    getLogger().warn(
      { job: name, dueAgain: dueAgain?.toISOString() },
      dueAgain
        ? "a tick of a job this worker does not schedule: put off for the workers that do"
        : "a tick of a job the database has no schedule for: dropped",
    );
    return;
  }
  const { decided } = await decideTicks(db, job, now, getConfig().podName);
  for (const tick of decided) getLogger().info(tick, `schedule: tick ${tick.tick.toISOString()} ${tick.outcome}`);
});
