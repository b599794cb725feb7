import type { JobHelpers, Task } from "graphile-worker";
import type { z } from "zod";
import { RunMissingError } from "../runs/store";

/** A job that retrying cannot fix: its payload does not match its task, or its run is gone. */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
}

/**
 * Fails the running job for good, with `message` as its error. graphile-worker has no way for a
 * running job to give up its remaining attempts, so a job with attempts left is replaced by one
 * with the same payload and key and a single attempt, which fails with this error and stays.
 */
async function failForGood(helpers: JobHelpers, payload: unknown, message: string): Promise<void> {
  const { job } = helpers;
  if (job.max_attempts <= 1) throw new PermanentJobError(message);
  helpers.logger.error(`${message}; failing the job for good`);
  await helpers.addJob(job.task_identifier, payload, { jobKey: job.key ?? undefined, maxAttempts: 1 });
}

/**
 * A graphile-worker task of a batch run: its payload checked against `schema`, and the jobs that
 * can never succeed failed at once instead of retried with backoff.
 */
export function batchTask<T>(schema: z.ZodType<T>, body: (payload: T, helpers: JobHelpers) => Promise<void>): Task {
  return async (payload, helpers) => {
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
      throw error;
    }
  };
}
