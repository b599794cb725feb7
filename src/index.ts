/**
 * The job API: what a job file (jobs/*.ts), a program embedding runners and the tests import, as
 * `import { defineJob, column } from "#pg-batch"` (package.json "imports"). Modules inside src/
 * may move; this entry and its names stay. `z` is zod, for a job's `params`: the very zod pg-batch
 * parses them with, so a job file imports this entry alone.
 */

export { z } from "zod";

export {
  type Column,
  type ColumnBuilder,
  ColumnValueError,
  column,
  Instant,
  type ValueOf,
  type ValuesOf,
} from "./jobs/columns";
export {
  type BoundColumn,
  defineJob,
  type FilterValue,
  type HookContext,
  type JobDefaults,
  type JobDefinition,
  JobDefinitionError,
  type JobSpec,
  type JobThrottle,
  type KeyType,
  type KeyValue,
  type RateLimit,
  type RecordContext,
  type RunInfo,
  type StateColumns,
  type ThrottleCondition,
  type ThrottleConditionContext,
  type ThrottleLimits,
} from "./jobs/define";
export type { ParamsSchema } from "./jobs/params";
export type { CatchUp, Overlap, ScheduleSpec } from "./jobs/schedule";
