import worker from "../.graphile-worker.config";

/**
 * The worker's configuration with the tasks of BENCH_TASK_DIRECTORY instead of dist/tasks: ours
 * and the bench's task that graphile-worker's crontab runs (bench/schedules.ts), whose crontab
 * the CLI's `--crontab` names.
 */
export default worker.then((preset) => ({
  ...preset,
  worker: { ...preset.worker, taskDirectory: process.env.BENCH_TASK_DIRECTORY },
}));
