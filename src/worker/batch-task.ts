import type { JobHelpers, Task } from "graphile-worker";
import { z } from "zod";
import { getConfig } from "../config/config";
import { ForgedQueueJobError, RunMissingError } from "../runs/errors";
import { appendEvent } from "../runs/events";

/**
 * A job that retrying cannot fix: its payload does not match its task, its run is gone, or its
 * run would not run it (a ForgedQueueJobError).
 */
export class PermanentQueueJobError extends Error {
  override name = "PermanentQueueJobError";
}

/**
 * The payload of a job that is kept only to fail for good: the payload it replaces, and why.
 * Its task fails it without looking again, so it fails for the reason first found.
 */
const FailedForGood = z.object({ failedForGood: z.string(), payload: z.unknown() }).strict();

/**
 * Fails the running job for good, with `message` as its error. graphile-worker has no way for a
 * running job to give up its remaining attempts, so a job with attempts left, or with a key, is
 * replaced by a job of a single attempt and no key that only fails with this error, and stays.
 * The key is given up because it is the workflow's: a job added by hand under a chunk's or a
 * step's key has replaced the workflow's own job, which the workers' recovery adds again once
 * the key is free (workflows/recovery.ts).
 */
async function failForGood(helpers: JobHelpers, payload: unknown, message: string): Promise<void> {
  const { job } = helpers;
  if (job.max_attempts <= 1 && job.key === null) throw new PermanentQueueJobError(message);
  helpers.logger.error(`${message}; failing the job for good`);
  await helpers.addJob(job.task_identifier, { failedForGood: message, payload }, { maxAttempts: 1 });
}

/** Records a refused job in its run's history, in a transaction of its own: the job's rolled back. */
function recordRefusal(helpers: JobHelpers, error: ForgedQueueJobError): Promise<void> {
  const { runId, step, round, chunkNo } = error.target;
  return helpers.withPgClient((client) =>
    appendEvent(client, runId, "job-refused", {
      step,
      actor: getConfig().podName,
      round,
      chunkNo,
      detail: error.message,
    }),
  );
}

/**
 * A graphile-worker task of a batch run: its payload checked against `schema`, and the jobs that
 * can never succeed failed at once instead of retried with backoff.
 */
export function batchTask<T>(schema: z.ZodType<T>, body: (payload: T, helpers: JobHelpers) => Promise<void>): Task {
  return async (payload, helpers) => {
    const failed = FailedForGood.safeParse(payload);
    if (failed.success) throw new PermanentQueueJobError(failed.data.failedForGood);
    const parsed = schema.safeParse(payload);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join(".") || "payload"}: ${issue.message}`);
      const message = `invalid payload for ${helpers.job.task_identifier} (job ${helpers.job.id}): ${problems.join("; ")}`;
      return failForGood(helpers, payload, message);
    }
    try {
      await body(parsed.data, helpers);
    } catch (error) {
      if (error instanceof RunMissingError) return failForGood(helpers, payload, error.message);
      if (error instanceof ForgedQueueJobError) {
        await recordRefusal(helpers, error);
        return failForGood(helpers, payload, error.message);
      }
      throw error;
    }
  };
}
