import { z } from "zod";

/** Payloads of the batch-run jobs, as src/runs/job-queue.ts enqueues them. */

const id = z.number().int().nonnegative();

export const PlanPayload = z.object({ run: id }).strict();
export const ChunkPayload = z.object({ run: id, round: id, chunk: id }).strict();
export const FinishPayload = z.object({ run: id, round: id }).strict();
export const SchedulePayload = z.object({ job: z.string().min(1) }).strict();
