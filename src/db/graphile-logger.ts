import { Logger as GraphileLogger, type Job, type LogLevel } from "graphile-worker";
import type { Logger } from "../base/logger";

const LEVELS: Record<LogLevel, "error" | "warn" | "info" | "debug"> = {
  error: "error",
  warning: "warn",
  info: "info",
  debug: "debug",
};

/**
 * graphile-worker's log lines, written through the process's pino logger. Its news about one
 * job ("Completed task ... with success") is debug: a run has thousands of them, and the run's
 * progress says the same at a glance. A job's warnings and errors keep their level.
 */
export function toGraphileLogger(logger: Logger): GraphileLogger {
  const worker = logger.child({ component: "graphile-worker" });
  return new GraphileLogger((scope) => (level, message, meta) => {
    const { job, ...rest } = { ...scope, ...meta } as { job?: Job } & Record<string, unknown>;
    // a queue job is logged by its identity, not its whole row; "job" in a log is a job definition's name
    const fields = job
      ? { ...rest, queueJob: { id: job.id, task: job.task_identifier, key: job.key, attempt: job.attempts } }
      : rest;
    worker[job && level === "info" ? "debug" : LEVELS[level]](fields, message);
  });
}
