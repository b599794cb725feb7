import type { ThrottleLimits } from "../jobs/define";
import type { ThrottleReading, ThrottleSignal } from "../runs/throttle-state";

/**
 * Which of the database's health limits a reading is over, and how long a throttled chunk waits
 * before it looks again. Pure: src/health/health-watch.ts reads, src/health/gate.ts waits.
 */

/**
 * Defaults a busy production primary can live with:
 * - replica lag 5 s: reads from standbys go stale by seconds, not minutes, and a failover loses
 *   little; a healthy local standby lags by tens of milliseconds even under a full-speed run;
 * - on vacuum: autovacuum cleaning the table is the database catching up with the run's dead rows,
 *   and claiming competes with it for the same pages;
 * - WAL rate off: the run is usually the largest writer, so any fixed figure only caps its speed
 *   on a server whose capacity the default cannot know; what WAL harms (standbys) is measured
 *   directly by the replica lag;
 * - lock wait 1 s: an application transaction blocked for a second by a claimed row is already an
 *   outage to somebody;
 * - active sessions off: how many a server runs well at once depends on its cores and its
 *   application, which the default cannot know.
 */
export const DEFAULT_THROTTLE_LIMITS: ThrottleLimits = {
  maxReplicaLagSeconds: 5,
  onVacuum: true,
  maxWalMegabytesPerSecond: 0,
  maxLockWaitSeconds: 1,
  maxActiveSessions: 0,
};

/** The job's limits over the defaults, and the environment's over both. */
export function resolveLimits(job: Partial<ThrottleLimits> | undefined, env: Partial<ThrottleLimits>): ThrottleLimits {
  const limits = { ...DEFAULT_THROTTLE_LIMITS };
  for (const layer of [job ?? {}, env]) {
    for (const [name, value] of Object.entries(layer)) {
      if (value !== undefined) Object.assign(limits, { [name]: value });
    }
  }
  return limits;
}

/** The database's health as one reading saw it (src/health/signals.ts). */
export interface HealthFigures {
  /** The largest replay lag of the standbys, in seconds (0 with none). */
  replicaLagSeconds: number;
  /** Tables (schema.table) a VACUUM or autovacuum is working on. */
  vacuumedTables: string[];
  /** WAL written per second since the reading before, in megabytes; 0 for the first reading. */
  walMegabytesPerSecond: number;
  /** The longest wait of a session blocked by a worker's session, in seconds. */
  lockWaitSeconds: number;
  /** Others' client sessions running a statement at the reading. */
  activeSessions: number;
}

const round1 = (value: number) => Math.round(value * 10) / 10;

/** A figure over its limit (0: the limit is off), as a reading; else null. */
function over(signal: ThrottleSignal, figure: number, threshold: number, unit: string): ThrottleReading | null {
  return threshold > 0 && figure > threshold ? { signal, figure: round1(figure), threshold, unit } : null;
}

/** The first limit the figures are over, for a job on `table` (schema.table); null while all are within. */
export function overLimit(figures: HealthFigures, limits: ThrottleLimits, table: string): ThrottleReading | null {
  const vacuum: ThrottleReading | null =
    limits.onVacuum && figures.vacuumedTables.includes(table)
      ? { signal: "vacuum", figure: 1, threshold: 0, unit: "", detail: table.replaceAll('"', "") }
      : null;
  return (
    over("lock_wait", figures.lockWaitSeconds, limits.maxLockWaitSeconds, "s") ??
    over("replica_lag", figures.replicaLagSeconds, limits.maxReplicaLagSeconds, "s") ??
    vacuum ??
    over("wal_rate", figures.walMegabytesPerSecond, limits.maxWalMegabytesPerSecond, "MB/s") ??
    over("active_sessions", figures.activeSessions, limits.maxActiveSessions, "sessions")
  );
}

/** What a job's own condition answered: a reason to hold back, or null. */
export function conditionReading(reason: string): ThrottleReading {
  return { signal: "condition", figure: 1, threshold: 0, unit: "", detail: reason };
}

/** The longest a throttled chunk waits before it reads the health again. */
export const MAX_BACKOFF_MS = 10_000;

/**
 * How long a chunk throttled for the `attempt`-th time in a row (1, 2, ...) waits: the check
 * interval doubling up to MAX_BACKOFF_MS, then between half and all of it at random (`random`
 * in [0, 1)), so that the workers of many pods do not all claim again in the same instant.
 */
export function backoffMs(attempt: number, intervalMs: number, random: number): number {
  const ceiling = Math.min(intervalMs * 2 ** Math.min(Math.max(attempt - 1, 0), 16), MAX_BACKOFF_MS);
  const bounded = Math.max(ceiling, Math.min(intervalMs, MAX_BACKOFF_MS));
  return Math.round(bounded / 2 + (random * bounded) / 2);
}

/** Where the primary's WAL stood at a reading (Date.now() milliseconds, bytes). */
export interface WalMark {
  at: number;
  walBytes: number;
}

/**
 * How long WAL has waited for a standby whose replay stands at `replayBytes`: since the first
 * reading (of `marks`, oldest first) that saw WAL beyond it; 0 once it has replayed what the
 * latest saw. Unlike replay_lag, it keeps growing while replay is paused or stuck, and stays 0
 * on an idle primary.
 */
export function pendingReplaySeconds(marks: WalMark[], replayBytes: number, now: number): number {
  const first = marks.find((mark) => mark.walBytes > replayBytes);
  return first ? Math.max(0, (now - first.at) / 1000) : 0;
}
