import type { z } from "zod";
import type { Column, ValuesOf } from "./columns";
import { type ParamsSchema, parseParams } from "./params";
import { parseSchedule, type Schedule, type ScheduleSpec } from "./schedule";
import { parseTableName, TABLE_NAME_FORMS, type TableName } from "./table-name";

/**
 * A batch job, defined in one file under jobs/: the table it works through, the columns its
 * function reads and the result columns it writes, which rows it takes, its defaults, and the
 * function for one record. Everything else (planning, claiming, outcomes, counters, status, the
 * backlog KEDA reads) follows from the definition. docs/jobs.md.
 */

export interface RecordContext<Params = Record<string, unknown>> {
  runId: number;
  /** The run's parameters, as the job's `params` schema parsed them ({} for a job without). */
  params: Params;
  /** 1 on the first attempt at this row. */
  attempt: number;
  /** Stable across re-executions of the same attempt: run, row and attempt. */
  idempotencyKey: string;
  /** Aborted when the row times out or the worker is shutting down. */
  signal: AbortSignal;
  /** Whether `signal` has aborted, without making it: an AbortSignal costs microseconds per record. */
  aborted: boolean;
}

/**
 * Where a row's processing state lives: columns of the job's own table, so that processing a
 * row is one write (of its state and its results together). `npm run jobs -- migration NAME`
 * writes the migration that adds them.
 */
export interface StateColumns {
  /** 'pending', 'completed' or 'failed'. */
  status: string;
  /** Attempts made at the row, over all runs. */
  attempts: string;
  /** The last attempt's error; NULL once it succeeds. */
  error: string;
  /** The run that processed the row last. */
  runId: string;
  /** When the row was processed last: rows processed since a round was planned are not its. */
  processedAt: string;
}

/** The state columns `prefix_status`, `prefix_attempts` and so on. */
export function stateColumnsWithPrefix(prefix: string): StateColumns {
  return {
    status: `${prefix}_status`,
    attempts: `${prefix}_attempts`,
    error: `${prefix}_error`,
    runId: `${prefix}_run_id`,
    processedAt: `${prefix}_processed_at`,
  };
}

/** What a run starts with unless the environment of the command that starts it says otherwise. */
export interface JobDefaults {
  /** Rows per chunk job (CHUNK_SIZE). */
  chunkSize: number;
  /** Attempts at each row (MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Records of one chunk in flight at the same time, on each worker (ROW_CONCURRENCY). */
  rowConcurrency: number;
  /** How long one record may take (ROW_TIMEOUT_S). */
  rowTimeoutMs: number;
  /**
   * How long a claimed row may stay locked (MAX_LOCK_HOLD_S): an application transaction that
   * updates it waits for the slice's commit, at most about this long.
   */
  maxLockHoldMs: number;
  /**
   * After each slice, how many times the time its statements took (claims and writes) a chunk
   * pauses before it claims again (SLICE_PAUSE_RATIO): 1 leaves the database as much idle time
   * as the run's statements take; 0, none.
   */
  slicePauseRatio: number;
}

export const BUILT_IN_DEFAULTS: JobDefaults = {
  chunkSize: 10_000,
  maxAttempts: 3,
  rowConcurrency: 32,
  rowTimeoutMs: 30_000,
  // beside an application that updates the table, a wait of a few hundred milliseconds on one row
  // holds up that client's next requests too (bench beside-app: 0.25 s kept its p99 at 26 times
  // its figure alone, 0.1 s at 2.5 times, for 9% of the run's rate with I/O-bound records)
  maxLockHoldMs: 100,
  // beside an application on two cores, a run without I/O that never paused took the CPU its
  // transactions queue for (bench beside-app: its p99 at 6.6 to 9.2 times its figure alone); a
  // pause as long as each slice's statements leaves the database idle as long as the run keeps
  // it busy. Records that wait on I/O leave it idle already, and pay next to nothing for it
  slicePauseRatio: 1,
};

/** The longest pause after a slice, in times its statements took: beyond, a run hardly moves. */
export const MAX_SLICE_PAUSE_RATIO = 100;

/**
 * Records a second, across every worker process of every pod (a token bucket in the database:
 * src/processing/rate-limit.ts); `burst`: how many may go at once after a pause, a second's
 * worth unless set.
 */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** The run a hook runs for, as it stands when the hook runs. */
export interface RunInfo<Params = Record<string, unknown>> {
  id: number;
  /** The run's parameters, as the job's `params` schema parsed them ({} for a job without). */
  params: Params;
  name: string;
  job: string;
  status: string;
  totalRecords: number;
  completedRecords: number;
  failedRecords: number;
}

/**
 * What a hook may use: the run, and the transaction of the workflow step it runs in. Its writes
 * commit with the step, exactly once; a side effect outside the database (a message sent) is
 * at-least-once, like a record's.
 */
export interface HookContext<Params = Record<string, unknown>> {
  run: RunInfo<Params>;
  query<Row = Record<string, unknown>>(text: string, values?: unknown[]): Promise<Row[]>;
}

/** What a job's own throttle condition may use: a query on the worker's pool, outside any transaction. */
export interface ThrottleConditionContext {
  job: string;
  query<Row = Record<string, unknown>>(text: string, values?: unknown[]): Promise<Row[]>;
}

/**
 * A job's own reason to hold its workers back, asked once per health check: a query whose first
 * column of its first row is the reason (no row or NULL: go on), or a function returning it.
 */
export type ThrottleCondition = { sql: string } | ((ctx: ThrottleConditionContext) => Promise<string | null>);

/** The limits a job's chunks claim under; 0 turns a numeric limit off. */
export interface ThrottleLimits {
  /** The most a standby may lag behind (replay), in seconds. */
  maxReplicaLagSeconds: number;
  /** Whether a VACUUM or autovacuum of the job's table holds claiming back. */
  onVacuum: boolean;
  /** The most WAL the server may write per second, in megabytes (the run's own included). */
  maxWalMegabytesPerSecond: number;
  /** The longest another session may wait on a lock one of the workers' sessions holds, in seconds. */
  maxLockWaitSeconds: number;
  /** The most client sessions of others (the workers' left out) that may run a statement at once. */
  maxActiveSessions: number;
}

/** When a job's workers stop claiming (docs/production.md, "Throttling on the database's health"). */
export interface JobThrottle {
  /** Over the built-in limits (src/health/throttle.ts); the THROTTLE_* variables override both. */
  limits?: Partial<ThrottleLimits>;
  when?: ThrottleCondition;
}

/** Values a job's `where` may compare a column with (equal to one of them). */
export type FilterValue = string | number | boolean;

/**
 * What a record's key arrives as. A number holds every integer up to 2^53 exactly: a run of a
 * job whose keys go beyond is refused at its plan. A BIGINT key beyond (Snowflake-style ids)
 * arrives exact as a BigInt, or as its text.
 */
export type KeyType = "number" | "bigint" | "string";

export type KeyValue<T extends KeyType> = T extends "bigint" ? bigint : T extends "string" ? string : number;

/** Result columns, or none: a job that only reads (sends records elsewhere) returns nothing. */
type ResultOf<Writes extends Record<string, Column>> = keyof Writes extends never ? undefined : ValuesOf<Writes>;

export interface JobSpec<
  Key extends string,
  Reads extends Record<string, Column>,
  Writes extends Record<string, Column>,
  KeyAs extends KeyType,
  Params extends ParamsSchema = ParamsSchema,
> {
  /** The job's name: `seed enqueue --job NAME`, the runs' `job` column, metrics' `job` label. */
  name: string;
  description?: string;
  /** The table, optionally schema-qualified ("billing.orders"; a part holding a dot in double quotes). */
  table: string;
  /** Its integer primary key (or unique and NOT NULL): chunks are ranges of it. */
  key: Key;
  /** What the record's key arrives as: a number (the default), a BigInt, or its text. */
  keyType?: KeyAs;
  /** The columns the function reads, by the property name it reads them as. */
  reads: Reads;
  /** The result columns, by the property name the function returns them as. */
  writes?: Writes;
  /** Only rows whose columns equal one of these values are the job's (and always pending or retryable ones). */
  where?: Record<string, FilterValue | readonly FilterValue[]>;
  /** The processing state's columns: a prefix ("reprice" gives reprice_status...) or each name. */
  state?: string | StateColumns;
  /** Columns set to now() with every outcome written (an updated_at the table keeps). */
  touch?: readonly string[];
  defaults?: Partial<JobDefaults>;
  /** Records a second across every worker (RATE_LIMIT_PER_S overrides it); none unless set. */
  rateLimit?: { perSecond: number; burst?: number };
  throttle?: JobThrottle;
  /** Starts a run at each tick of a cron expression, in a time zone (docs/jobs.md, Scheduled runs). */
  schedule?: ScheduleSpec;
  /**
   * The run's parameters, given when it starts (`seed enqueue --param key=value`): a zod object
   * whose output `ctx.params` and the hooks' `run.params` are. Checked when a run starts.
   */
  params?: Params;
  /**
   * The function for one record. Return the results to mark the row completed; throw to mark
   * it failed with the error's message (tried again in a later round until its attempts run
   * out). Side effects are at-least-once: pass `ctx.idempotencyKey` on to external systems.
   */
  process(
    record: ValuesOf<Reads> & Record<Key, KeyValue<KeyAs>>,
    ctx: RecordContext<z.output<Params>>,
  ): Promise<ResultOf<Writes>>;
  /** Runs once before the run is planned; throwing refuses the run (it ends failed with the message). */
  beforeRun?(ctx: HookContext<z.output<Params>>): Promise<unknown>;
  /** Runs once when the run ends (completed, failed or cancelled); a failure is recorded in its history. */
  afterRun?(ctx: HookContext<z.output<Params>>): Promise<unknown>;
}

/** A column as generic code sees it: the property it travels as, and the table's column. */
export interface BoundColumn {
  property: string;
  column: string;
  spec: Column;
}

/** A job definition with its types erased, as planning, claiming and writing use it. */
export interface JobDefinition {
  name: string;
  description: string;
  schema: string;
  table: string;
  key: string;
  keyType: KeyType;
  reads: BoundColumn[];
  writes: BoundColumn[];
  where: { column: string; values: FilterValue[] }[];
  state: StateColumns;
  touch: string[];
  defaults: JobDefaults;
  rateLimit: RateLimit | undefined;
  throttle: JobThrottle;
  /** The parameters' schema; none: the job takes none. */
  params: ParamsSchema | undefined;
  schedule: Schedule | undefined;
  process(record: Record<string, unknown>, ctx: RecordContext): Promise<Record<string, unknown> | undefined>;
  beforeRun?(ctx: HookContext): Promise<unknown>;
  afterRun?(ctx: HookContext): Promise<unknown>;
}

export class JobDefinitionError extends Error {
  override name = "JobDefinitionError";
}

const JOB_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
/** PostgreSQL's identifiers are at most 63 bytes; any other character is quoted. */
const IDENTIFIER_BYTES = 63;

function checkIdentifier(job: string, what: string, name: string): string {
  if (name.length === 0 || Buffer.byteLength(name) > IDENTIFIER_BYTES || name.includes("\0")) {
    throw new JobDefinitionError(`job ${job}: ${what} ${JSON.stringify(name)} is not a PostgreSQL identifier`);
  }
  return name;
}

const KEY_TYPES: readonly string[] = ["number", "bigint", "string"] satisfies KeyType[];

function checkKeyType(job: string, keyType: string): KeyType {
  if (!KEY_TYPES.includes(keyType)) {
    throw new JobDefinitionError(
      `job ${job}: keyType ${JSON.stringify(keyType)} is not one of ${KEY_TYPES.join(", ")}`,
    );
  }
  return keyType as KeyType;
}

function bind(job: string, columns: Record<string, Column> | undefined): BoundColumn[] {
  return Object.entries(columns ?? {}).map(([property, spec]) => ({
    property,
    column: checkIdentifier(job, `column of ${property}`, spec.name ?? property),
    spec,
  }));
}

/** The throttle limits that are figures (the rest, onVacuum, is on or off). */
const NUMERIC_LIMITS = ["maxReplicaLagSeconds", "maxWalMegabytesPerSecond", "maxLockWaitSeconds", "maxActiveSessions"];

/** The job's throttle, or a refusal naming the setting that is not one. */
function checkThrottle(job: string, throttle: JobThrottle): JobThrottle {
  for (const [name, value] of Object.entries(throttle.limits ?? {})) {
    const valid =
      name === "onVacuum"
        ? typeof value === "boolean"
        : NUMERIC_LIMITS.includes(name) && typeof value === "number" && Number.isFinite(value) && value >= 0;
    if (!valid) {
      throw new JobDefinitionError(
        `job ${job}: throttle limit ${name} must be ${name === "onVacuum" ? "true or false" : "a number of at least 0 (0: off)"}`,
      );
    }
  }
  const { when } = throttle;
  if (when !== undefined && typeof when !== "function" && typeof when?.sql !== "string") {
    throw new JobDefinitionError(`job ${job}: throttle.when must be { sql: "SELECT ..." } or an async function`);
  }
  return throttle;
}

/** The schema and table `text` names, or a refusal saying how to name them. */
function tableOf(job: string, text: string): TableName {
  const name = parseTableName(text);
  if (!name) throw new JobDefinitionError(`job ${job}: table ${JSON.stringify(text)} is not ${TABLE_NAME_FORMS}`);
  return name;
}

function checkRateLimit(job: string, limit: { perSecond: number; burst?: number } | undefined): RateLimit | undefined {
  if (limit === undefined) return undefined;
  const { perSecond, burst = Math.max(perSecond, 1) } = limit;
  if (!Number.isFinite(perSecond) || perSecond <= 0) {
    throw new JobDefinitionError(`job ${job}: rateLimit.perSecond must be a number above 0`);
  }
  if (!Number.isFinite(burst) || burst < 1) {
    throw new JobDefinitionError(`job ${job}: rateLimit.burst must be a number of at least 1`);
  }
  return { perSecond, burst };
}

/** The job's schedule, its parameters parsed by the job's `params` as a run's would be; or a refusal in one line. */
function checkSchedule(
  job: string,
  spec: ScheduleSpec | undefined,
  params: ParamsSchema | undefined,
): Schedule | undefined {
  if (spec === undefined) return undefined;
  let schedule: Schedule;
  try {
    schedule = parseSchedule(spec);
  } catch (error) {
    throw new JobDefinitionError(`job ${job}: ${(error as Error).message}`);
  }
  const parsed = parseParams({ name: job, params }, schedule.params);
  if (!parsed.ok) throw new JobDefinitionError(`job ${job}: schedule.params: ${parsed.problems.join("; ")}`);
  return schedule;
}

/** Declares a job; the types of its function's record and result follow from `reads` and `writes`. */
export function defineJob<
  const Key extends string,
  Reads extends Record<string, Column>,
  Writes extends Record<string, Column> = Record<never, Column>,
  const KeyAs extends KeyType = "number",
  Params extends ParamsSchema = z.ZodObject<Record<never, z.ZodType>>,
>(spec: JobSpec<Key, Reads, Writes, KeyAs, Params>): JobDefinition {
  if (!JOB_NAME.test(spec.name)) {
    throw new JobDefinitionError(
      `job name ${JSON.stringify(spec.name)} must be lowercase letters, digits, - or _, starting with a letter, at most 40`,
    );
  }
  const { schema, table } = tableOf(spec.name, spec.table);
  const reads = bind(spec.name, spec.reads);
  const writes = bind(spec.name, spec.writes);
  const properties = new Set<string>([spec.key]);
  for (const { property } of reads) {
    if (properties.has(property)) throw new JobDefinitionError(`job ${spec.name}: property ${property} is read twice`);
    properties.add(property);
  }
  const state = typeof spec.state === "object" ? spec.state : stateColumnsWithPrefix(spec.state ?? "batch");
  for (const name of Object.values(state)) checkIdentifier(spec.name, "state column", name);
  const defaults = { ...BUILT_IN_DEFAULTS, ...spec.defaults };
  for (const [setting, value] of Object.entries(defaults)) {
    if (setting === "slicePauseRatio") {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_SLICE_PAUSE_RATIO)
        throw new JobDefinitionError(
          `job ${spec.name}: default slicePauseRatio must be a number from 0 to ${MAX_SLICE_PAUSE_RATIO}`,
        );
    } else if (!Number.isInteger(value) || value < 1) {
      throw new JobDefinitionError(`job ${spec.name}: default ${setting} must be a whole number of at least 1`);
    }
  }
  return {
    name: spec.name,
    description: spec.description ?? "",
    throttle: checkThrottle(spec.name, spec.throttle ?? {}),
    schema: checkIdentifier(spec.name, "schema", schema),
    table: checkIdentifier(spec.name, "table", table),
    key: checkIdentifier(spec.name, "key", spec.key),
    keyType: checkKeyType(spec.name, spec.keyType ?? "number"),
    reads,
    writes,
    where: Object.entries(spec.where ?? {}).map(([column, values]) => ({
      column: checkIdentifier(spec.name, "where column", column),
      values: Array.isArray(values) ? [...values] : [values as FilterValue],
    })),
    state,
    touch: (spec.touch ?? []).map((column) => checkIdentifier(spec.name, "touch column", column)),
    defaults,
    rateLimit: checkRateLimit(spec.name, spec.rateLimit),
    params: spec.params,
    schedule: checkSchedule(spec.name, spec.schedule, spec.params as ParamsSchema | undefined),
    process: spec.process as JobDefinition["process"],
    beforeRun: spec.beforeRun as JobDefinition["beforeRun"],
    afterRun: spec.afterRun as JobDefinition["afterRun"],
  };
}
