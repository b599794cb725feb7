import fs from "node:fs";
import os from "node:os";
import { parse as parseConnectionString } from "pg-connection-string";
import { z } from "zod";
import type { LogFormat } from "../base/logger";
import { redactSecrets } from "../base/redact";
import { SSL_MODES, tlsSettingsProblem, withTlsSettings } from "../db/tls";
import type { ThrottleLimits } from "../jobs/define";
import { MAX_SLICE_PAUSE_RATIO } from "../jobs/define";
import { DELAY_SPREADS, type DelaySpread } from "../processing/fault-injection";

/**
 * Every setting of the system, read from the environment once per process.
 * `parseConfig` is pure (tests call it); `getConfig` is what entry points use.
 */

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** auto: readable lines when stderr is a terminal, JSON lines otherwise. */
const LOG_FORMATS = ["auto", "json", "pretty"] as const satisfies readonly LogFormat[];
/** What stands between DATABASE_URL and the database: nothing, or PgBouncer in one of its pooling modes. */
const POOLING_MODES = ["none", "session", "transaction"] as const;
export type PoolingMode = (typeof POOLING_MODES)[number];

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, `must be a whole number from ${min} to ${max}`)
        .max(max, `must be a whole number from ${min} to ${max}`),
    );

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30", "30s", "1.5m", "500ms" (Go-style durations; a bare number is seconds) to milliseconds. */
const duration = (maxMs: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?(ms|s|m|h)?$/, 'must be a duration such as "30" or "30s" (units: ms, s, m, h; default s)')
    .transform((text) => {
      const [, amount = "0", unit = "s"] = /^([\d.]+)(ms|s|m|h)?$/.exec(text) ?? [];
      return Math.round(Number(amount) * (UNIT_MS[unit] ?? 1000));
    })
    .pipe(z.number().max(maxMs, `must be at most ${maxMs / 1000}s`));

/** A positive number of records a second ("200", "12.5"). */
const perSecond = z
  .string()
  .regex(/^\d+(\.\d+)?$/, "must be a number of records a second above 0")
  .transform(Number)
  .pipe(z.number().positive("must be a number of records a second above 0"));

const share = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, "must be a number from 0 to 1")
  .transform(Number);

/** A figure such as "5" or "0.5", at least 0 (0 turns a throttle limit off). */
const decimal = z
  .string()
  .regex(/^\d+(\.\d+)?$/, "must be a number of at least 0 (0: off)")
  .transform(Number);

const ON_OFF = ["on", "off"] as const;
const onOff = z.enum(ON_OFF, { error: "must be on or off" });

/** Why node-postgres cannot read `url` (it would throw at the first connection); undefined when it can. */
function unreadableBecause(url: string): string | undefined {
  try {
    parseConnectionString(url);
    return undefined;
  } catch (error) {
    return redactSecrets(String((error as { message?: unknown } | undefined)?.message ?? error));
  }
}

/** Why this process cannot read `file`; undefined when it can. */
function unreadableFile(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return undefined;
  } catch (error) {
    return String((error as NodeJS.ErrnoException).code ?? error);
  }
}

/** Why a connection string (its TLS settings written in: withTlsSettings) cannot connect; undefined when it can. */
function connectionProblem(url: string): string | undefined {
  return tlsSettingsProblem(url, unreadableFile) ?? unreadableBecause(url);
}

// it travels as `Authorization: Bearer TOKEN`, which the dashboard splits on the space
const accessToken = z
  .string()
  .min(16, "must be at least 16 characters")
  .regex(/^\S+$/, "must not hold white space: it travels as `Authorization: Bearer TOKEN`, split on the space");

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/\S+$/, "must be a postgres:// or postgresql:// connection string")
  .superRefine((url, context) => {
    // read in libpq's meaning of its own TLS settings, as it connects (node-postgres warns of `require` otherwise)
    const why = connectionProblem(withTlsSettings(url, {}));
    if (why)
      context.addIssue({ code: "custom", message: `is not a connection string node-postgres can read (${why})` });
  });

const envSchema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  // unset: the job's default (jobs/*.ts defaults, else src/jobs/define.ts BUILT_IN_DEFAULTS)
  CHUNK_SIZE: wholeNumber(1, 1_000_000).optional(),
  WORKERS: wholeNumber(1, 256).default(4),
  ROW_CONCURRENCY: wholeNumber(1, 10_000).optional(),
  // PostgreSQL takes a statement timeout of 0 as none at all: refused rather than taken so
  CLAIM_TIMEOUT_S: duration(3_600_000).pipe(z.number().min(1000, "must be at least 1s")).default(30_000),
  PLAN_TIMEOUT_S: duration(86_400_000).pipe(z.number().min(1000, "must be at least 1s")).default(120_000),
  SHUTDOWN_GRACE_S: duration(3_600_000).default(30_000),
  ROW_TIMEOUT_S: duration(3_600_000).optional(),
  MAX_LOCK_HOLD_S: duration(60_000).pipe(z.number().min(100, "must be at least 0.1s")).optional(),
  SLICE_PAUSE_RATIO: decimal
    .pipe(z.number().max(MAX_SLICE_PAUSE_RATIO, `must be a number from 0 to ${MAX_SLICE_PAUSE_RATIO}`))
    .optional(),
  POD_NAME: z.string().max(200, "must be at most 200 characters").optional(),
  JOBS_DIR: z.string().min(1, "must be a directory").optional(),
  MAX_ATTEMPTS: wholeNumber(1, 100).optional(),
  RETRY_ROUNDS: wholeNumber(0, 100).optional(),
  RETRY_DELAY_S: duration(86_400_000).default(5_000),
  CHUNK_MAX_ATTEMPTS: wholeNumber(1, 25).default(10),
  WORKER_DEAD_AFTER_S: duration(3_600_000).pipe(z.number().min(2000, "must be at least 2s")).default(60_000),
  RECONNECT_TIMEOUT_S: duration(3_600_000).default(60_000),
  PROCESS_DELAY_MS: wholeNumber(0, 600_000).default(0),
  PROCESS_DELAY_SPREAD: z.enum(DELAY_SPREADS, { error: `must be one of ${DELAY_SPREADS.join(", ")}` }).default("fixed"),
  FAIL_RATE: share.default(0),
  FAIL_FIRST_ATTEMPTS: wholeNumber(1, 100).optional(),
  METRICS_PORT: wholeNumber(0, 65_535).default(9464),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  LOG_FORMAT: z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(", ")}` }).default("auto"),
  // https://no-color.org: set and not empty turns colours off
  NO_COLOR: z.string().optional(),
  // the dashboard (npm run dashboard: app/dashboard.ts)
  DASHBOARD_PORT: wholeNumber(0, 65_535).default(8080),
  // loopback unless asked: a dashboard reached from another machine is given a token (docs/dashboard.md)
  DASHBOARD_HOST: z.string().regex(/^\S+$/, "must be a host name or an address to listen on").default("127.0.0.1"),
  DASHBOARD_TOKEN: accessToken.optional(),
  DASHBOARD_READ_TOKEN: accessToken.optional(),
  MONITOR_DATABASE_URL: postgresUrl.optional(),
  // unset: each job's own rateLimit; off: none, whatever the job says
  RATE_LIMIT_PER_S: z
    .union([z.literal("off"), perSecond], { error: 'must be a number of records a second above 0, or "off"' })
    .optional(),
  RATE_LIMIT_BURST: perSecond.pipe(z.number().min(1, "must be at least 1")).optional(),
  DATABASE_POOLING: z.enum(POOLING_MODES, { error: `must be one of ${POOLING_MODES.join(", ")}` }).default("none"),
  WORKER_DIRECT_DATABASE_URL: postgresUrl.optional(),
  // throttling on the database's health (src/health/); the limits override each job's
  THROTTLE: onOff.default("on"),
  THROTTLE_MAX_REPLICA_LAG_S: decimal.optional(),
  THROTTLE_ON_VACUUM: onOff.optional(),
  THROTTLE_MAX_WAL_MB_S: decimal.optional(),
  THROTTLE_MAX_LOCK_WAIT_S: decimal.optional(),
  THROTTLE_MAX_ACTIVE_SESSIONS: wholeNumber(0, 100_000).optional(),
  HEALTH_CHECK_INTERVAL_S: duration(60_000).pipe(z.number().min(100, "must be at least 100ms")).default(1000),
  REPLICA_DATABASE_URL: postgresUrl.optional(),
  // TLS for every connection string that does not say (src/db/tls.ts: libpq's meaning, as KEDA's)
  PGSSLMODE: z.enum(SSL_MODES, { error: `must be one of ${SSL_MODES.join(", ")}` }).optional(),
  PGSSLROOTCERT: z.string().optional(),
});

export interface Config {
  /** Absent only where an embedded database may stand in (`npm start`). */
  databaseUrl: string | undefined;
  /** How DATABASE_URL reaches the database: directly, or through PgBouncer in session or transaction pooling. */
  pooling: PoolingMode;
  /**
   * A connection to the database itself, past the pooler, for what needs a session of its own
   * (sessionDatabaseUrl); required with transaction pooling.
   */
  workerDirectDatabaseUrl: string | undefined;
  /** Rows per chunk job of the runs this process starts; unset: the job's default. */
  chunkSize: number | undefined;
  /** Chunk jobs one process runs at the same time. */
  workers: number;
  /** Database connections, derived from `workers`. */
  pools: PoolSizes;
  /** Records of one chunk in flight at the same time; unset: the job's default. */
  rowConcurrency: number | undefined;
  claimTimeoutMs: number;
  /** Statement timeout of a run's planning: its start, its plan and each retry round's. */
  planTimeoutMs: number;
  shutdownGraceMs: number;
  /** How long one record may take; unset: the job's default. */
  rowTimeoutMs: number | undefined;
  /** How long a slice may keep the rows it claimed locked; unset: the job's default. */
  maxLockHoldMs: number | undefined;
  /** After each slice, how many times the time its statements took a chunk pauses; unset: the job's default. */
  slicePauseRatio: number | undefined;
  podName: string;
  /** Where the job modules are, instead of jobs/ beside the code (src/jobs/catalog.ts). */
  jobsDir: string | undefined;
  /** Attempts at each row of the runs this process starts; unset: the job's default. */
  maxAttempts: number | undefined;
  /** Rounds that re-run retryable failed rows after the first pass; unset: one per attempt left. */
  retryRounds: number | undefined;
  /** Delay before the first retry round; it doubles every round. */
  retryDelayMs: number;
  chunkMaxAttempts: number;
  /** How long a worker whose session is gone stays presumed alive before its jobs are taken back. */
  workerDeadAfterMs: number;
  /** How long a worker waits for a lost database before it gives up a chunk or, its job pool lost, exits. */
  reconnectTimeoutMs: number;
  processDelayMs: number;
  /** How PROCESS_DELAY_MS varies from record to record: not at all, or as I/O's long tail. */
  processDelaySpread: DelaySpread;
  failRate: number;
  failFirstAttempts: number | undefined;
  /** Port of the worker's /metrics and /healthz; 0 serves none. */
  metricsPort: number;
  /**
   * Whether METRICS_PORT was set: a port asked for that cannot be served is a configuration
   * error, where the default's is a warning (a second worker on the same host).
   */
  metricsPortSet: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  logFormat: (typeof LOG_FORMATS)[number];
  noColor: boolean;
  dashboard: DashboardConfig;
  /** Records a second across every worker, for every job this process runs; unset: each job's own. */
  rateLimitPerSecond: number | "off" | undefined;
  /** The burst of that limit or of a job's own; unset: the job's, else a second's worth. */
  rateLimitBurst: number | undefined;
  throttle: ThrottleConfig;
}

/** How workers hold back on the database's health (src/health/). */
export interface ThrottleConfig {
  /** THROTTLE=off: claim as fast as the database allows, reading no health at all. */
  enabled: boolean;
  /** The limits the environment sets, over every job's. */
  limits: Partial<ThrottleLimits>;
  /** The health is read at most this often per process, and only while chunks run. */
  healthCheckIntervalMs: number;
  /** A standby whose replay position is read with the primary's health. */
  replicaDatabaseUrl: string | undefined;
}

/** The dashboard's settings (npm run dashboard). */
export interface DashboardConfig {
  /** 0 takes any free port. */
  port: number;
  /** The address listened on: loopback by default, 0.0.0.0 in a pod. */
  host: string;
  /** Unlocks pause, resume and cancel, and row errors, for requests that carry it; without it the dashboard only reads. */
  token: string | undefined;
  /** Unlocks row errors (which can hold a row's values) for requests that carry it, and nothing else. */
  readToken: string | undefined;
  /** A connection string to read through instead of DATABASE_URL: the dashboard then only reads, token or not. */
  monitorDatabaseUrl: string | undefined;
}

/**
 * The database connections a process opens, derived from WORKERS here and nowhere else: the
 * connection budget of a deployment (docs/kubernetes.md, "Connection budget"; test/system/k8s.test.ts) is computed
 * from them.
 */
export interface PoolSizes {
  /**
   * graphile-worker's pool: a client per running job (a chunk holds one for each slice, a step
   * for its transaction; a free slot uses one to fetch its next job), one for LISTEN, one for
   * the batched recording of jobs' ends. A chunk whose slices overlap (one ends while the next
   * starts) takes a second client only when one is free: until then its next slice waits.
   */
  workerPool: number;
  /**
   * The most one worker process opens: its pool, the liveness session (src/worker/liveness.ts),
   * and one short-lived connection: the start-up check (src/db/preflight.ts) before the pool
   * opens, or the release of a lost pool's jobs (src/worker/pool-watchdog.ts) after it has closed.
   */
  perWorker: number;
  /**
   * The one pool of `npm start`, shared by its in-process worker and its own work: the
   * migrations, the import's files (up to 4 at once), the run's start and the progress poll.
   */
  mainJob: number;
}

export function poolSizes(workers: number): PoolSizes {
  const workerPool = workers + 2;
  return { workerPool, perWorker: workerPool + 2, mainJob: workerPool + 4 };
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Variables whose values are never echoed back in an error. */
const SECRET_VARIABLES = new Set([
  "DATABASE_URL",
  "PG_DSN",
  "DASHBOARD_TOKEN",
  "DASHBOARD_READ_TOKEN",
  "MONITOR_DATABASE_URL",
  "WORKER_DIRECT_DATABASE_URL",
  "REPLICA_DATABASE_URL",
]);

export function parseConfig(env: NodeJS.ProcessEnv): Config {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    raw[key] = value === undefined || value.trim() === "" ? undefined : value.trim();
  }
  // PG_DSN: the connection string's other name, read when DATABASE_URL is not set.
  const urlVariable = raw.DATABASE_URL === undefined && env.PG_DSN?.trim() ? "PG_DSN" : "DATABASE_URL";
  if (urlVariable === "PG_DSN") raw.DATABASE_URL = env.PG_DSN?.trim();

  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "environment");
    const name = key === "DATABASE_URL" ? urlVariable : key;
    const shown = SECRET_VARIABLES.has(name) ? "" : ` (got ${JSON.stringify(raw[key])})`;
    throw new ConfigError(`${name} ${issue?.message ?? "is invalid"}${shown}`);
  }
  const e = parsed.data;
  const tls = { PGSSLMODE: e.PGSSLMODE, PGSSLROOTCERT: e.PGSSLROOTCERT };
  /** A connection string as every connection opens it: with the TLS settings it uses (src/db/tls.ts). */
  const connectsWith = (name: string, url: string | undefined): string | undefined => {
    if (url === undefined) return undefined;
    const resolved = withTlsSettings(url, tls);
    const problem = connectionProblem(resolved);
    if (problem) throw new ConfigError(`${name}: ${problem} (its TLS settings, else PGSSLMODE and PGSSLROOTCERT)`);
    return resolved;
  };
  return {
    databaseUrl: connectsWith(urlVariable, e.DATABASE_URL),
    pooling: e.DATABASE_POOLING,
    workerDirectDatabaseUrl: connectsWith("WORKER_DIRECT_DATABASE_URL", e.WORKER_DIRECT_DATABASE_URL),
    chunkSize: e.CHUNK_SIZE,
    workers: e.WORKERS,
    pools: poolSizes(e.WORKERS),
    rowConcurrency: e.ROW_CONCURRENCY,
    claimTimeoutMs: e.CLAIM_TIMEOUT_S,
    planTimeoutMs: e.PLAN_TIMEOUT_S,
    shutdownGraceMs: e.SHUTDOWN_GRACE_S,
    rowTimeoutMs: e.ROW_TIMEOUT_S,
    maxLockHoldMs: e.MAX_LOCK_HOLD_S,
    slicePauseRatio: e.SLICE_PAUSE_RATIO,
    podName: e.POD_NAME ?? `${os.hostname()}-${process.pid}`,
    jobsDir: e.JOBS_DIR,
    maxAttempts: e.MAX_ATTEMPTS,
    retryRounds: e.RETRY_ROUNDS,
    retryDelayMs: e.RETRY_DELAY_S,
    chunkMaxAttempts: e.CHUNK_MAX_ATTEMPTS,
    workerDeadAfterMs: e.WORKER_DEAD_AFTER_S,
    reconnectTimeoutMs: e.RECONNECT_TIMEOUT_S,
    processDelayMs: e.PROCESS_DELAY_MS,
    processDelaySpread: e.PROCESS_DELAY_SPREAD,
    failRate: e.FAIL_RATE,
    failFirstAttempts: e.FAIL_FIRST_ATTEMPTS,
    metricsPort: e.METRICS_PORT,
    metricsPortSet: raw.METRICS_PORT !== undefined,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    noColor: e.NO_COLOR !== undefined,
    dashboard: {
      port: e.DASHBOARD_PORT,
      host: e.DASHBOARD_HOST,
      token: e.DASHBOARD_TOKEN,
      readToken: e.DASHBOARD_READ_TOKEN,
      monitorDatabaseUrl: connectsWith("MONITOR_DATABASE_URL", e.MONITOR_DATABASE_URL),
    },
    rateLimitPerSecond: e.RATE_LIMIT_PER_S,
    rateLimitBurst: e.RATE_LIMIT_BURST,
    throttle: {
      enabled: e.THROTTLE === "on",
      limits: {
        maxReplicaLagSeconds: e.THROTTLE_MAX_REPLICA_LAG_S,
        onVacuum: e.THROTTLE_ON_VACUUM === undefined ? undefined : e.THROTTLE_ON_VACUUM === "on",
        maxWalMegabytesPerSecond: e.THROTTLE_MAX_WAL_MB_S,
        maxLockWaitSeconds: e.THROTTLE_MAX_LOCK_WAIT_S,
        maxActiveSessions: e.THROTTLE_MAX_ACTIVE_SESSIONS,
      },
      healthCheckIntervalMs: e.HEALTH_CHECK_INTERVAL_S,
      replicaDatabaseUrl: connectsWith("REPLICA_DATABASE_URL", e.REPLICA_DATABASE_URL),
    },
  };
}

let loaded: Config | undefined;

/**
 * The process's configuration. A bad value throws a ConfigError naming the variable, which the
 * entry point reports in one line (cli/run-command.ts): configuration mistakes are not crashes.
 */
export function getConfig(): Config {
  loaded ??= parseConfig(process.env);
  return loaded;
}

/** The connection string, or a ConfigError where a database is required. */
export function requireDatabaseUrl(config: Config): string {
  if (config.databaseUrl) return config.databaseUrl;
  throw new ConfigError("DATABASE_URL (or PG_DSN) must be set");
}

/**
 * The connection string of a program that needs a session of its own: graphile-worker's LISTEN
 * and prepared statements, the liveness's advisory lock, the migrations' lock, the import's COPY
 * and session settings. WORKER_DIRECT_DATABASE_URL where set; else DATABASE_URL, unless that
 * goes through a transaction pooler, which keeps no session between transactions: then the
 * program (`who`) refuses to start: a ConfigError.
 */
export function sessionDatabaseUrl(config: Config, who: string): string {
  if (config.workerDirectDatabaseUrl) return config.workerDirectDatabaseUrl;
  if (config.pooling === "transaction") {
    throw new ConfigError(
      `DATABASE_POOLING=transaction keeps no session for ${who}: set WORKER_DIRECT_DATABASE_URL to a direct connection (or use session pooling)`,
    );
  }
  return requireDatabaseUrl(config);
}
