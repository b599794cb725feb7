import type { PoolClient } from "pg";
import { inTransaction, type WithClient } from "../db/pool";
import { appendEvent } from "./events";

/**
 * A run's throttle as recorded (batch_throttles, sql/migrations/017_throttle_state.sql): what
 * each of its workers waits on, the run's throttle made of them, and the `throttled` and
 * `resumed` entries of its history.
 */

export type ThrottleSignal = "replica_lag" | "vacuum" | "wal_rate" | "lock_wait" | "active_sessions" | "condition";

/** A signal over its limit: e.g. replica_lag, 12.3 against 5, "s". */
export interface ThrottleReading {
  signal: ThrottleSignal;
  figure: number;
  threshold: number;
  /** The figure's unit; "" for a signal that is on or off (a vacuum, a job's condition). */
  unit: string;
  /** What the figure does not say: the job's condition's reason, the table being vacuumed. */
  detail?: string;
}

/** A run throttled now: its workers' newest reading, since when, and how many of them wait. */
export interface RunThrottle extends ThrottleReading {
  since: Date;
  seenAt: Date;
  workers: number;
  /** The reading in words: "replica lag 12.3 s over 5 s". */
  text: string;
}

const SIGNAL_WORDS: Record<ThrottleSignal, string> = {
  replica_lag: "replica lag",
  vacuum: "vacuum",
  wal_rate: "WAL rate",
  lock_wait: "lock wait",
  active_sessions: "active sessions",
  condition: "condition",
};

/** Three significant digits at most: 12.3, 5, 0.25, 150. */
const figureText = (value: number) =>
  String(Math.abs(value) >= 1000 ? Math.round(value) : Number(value.toPrecision(3)));

/** Units the signal's words already name: "active sessions 12 over 8", not "12 sessions over 8 sessions". */
const NAMED_UNITS = new Set(["sessions"]);

/**
 * "replica lag 12.3 s over 5 s", "lock wait 2.5 s over 1 s (pid 4242)", "active sessions 12 over
 * 8", "condition: nightly report".
 */
export function describeThrottle(reading: ThrottleReading): string {
  const words = SIGNAL_WORDS[reading.signal];
  if (reading.unit === "") return reading.detail ? `${words}: ${reading.detail}` : words;
  const unit = NAMED_UNITS.has(reading.unit) ? "" : ` ${reading.unit}`;
  const figures = `${figureText(reading.figure)}${unit} over ${figureText(reading.threshold)}${unit}`;
  return `${words} ${figures}${reading.detail ? ` (${reading.detail})` : ""}`;
}

/**
 * Serialises the throttle transitions of one run: a transaction-level advisory lock under
 * (this class, the run's id), held to its commit. It takes no lock of batch_jobs' row, so a
 * throttled worker never waits for another's slice to commit. The two-key form never meets the
 * one-key locks of src/worker/liveness.ts and src/db/migrate.ts.
 */
const THROTTLE_LOCK_CLASS = 17;

interface Before {
  /** The run's throttle now, if it has one: no worker's throttle is older than the view's 30 s. */
  since: Date | null;
  /** Its workers' rows, stale ones included. */
  rows: number;
  lastSeen: Date | null;
}

/**
 * Called by a worker when its chunk of run `runId` starts waiting on a signal (reading), keeps
 * waiting (the same call again every few seconds: refreshes the figure and seen-at), or resumes
 * (null). The run's history gets `throttled` when the first of its workers starts waiting and
 * `resumed` when the last stops (or, if every worker stopped refreshing, at the next call): one
 * entry per transition of the run, however many workers wait.
 *
 * Locks: the advisory lock above; the worker's row of batch_throttles; the rows of the run's
 * throttle when it ends. One short transaction.
 */
export async function recordThrottle(
  db: WithClient,
  runId: number,
  worker: string,
  reading: ThrottleReading | null,
): Promise<void> {
  await db((client) =>
    inTransaction(client, async () => {
      await client.query("SELECT pg_advisory_xact_lock($1, $2)", [THROTTLE_LOCK_CLASS, runId]);
      const before = await readBefore(client, runId);
      if (before.since === null && before.rows > 0) {
        // every worker stopped refreshing (they died, or lost the database): that throttle is over
        await client.query("DELETE FROM batch_throttles WHERE run_id = $1", [runId]);
        await appendEvent(client, runId, "resumed", {
          step: "chunk",
          actor: worker,
          detail: `no worker has waited since ${before.lastSeen?.toISOString()}`,
        });
      }
      if (reading) {
        await client.query(
          `INSERT INTO batch_throttles (run_id, worker, signal, figure, threshold, unit, detail, since, seen_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), now())
           ON CONFLICT (run_id, worker) DO UPDATE
             SET signal = excluded.signal, figure = excluded.figure, threshold = excluded.threshold,
                 unit = excluded.unit, detail = excluded.detail, seen_at = excluded.seen_at`,
          [
            runId,
            worker,
            reading.signal,
            reading.figure,
            reading.threshold,
            reading.unit,
            reading.detail ?? null,
            before.since,
          ],
        );
        if (before.since === null) {
          await appendEvent(client, runId, "throttled", {
            step: "chunk",
            actor: worker,
            detail: describeThrottle(reading),
          });
        }
        return;
      }
      await client.query("DELETE FROM batch_throttles WHERE run_id = $1 AND worker = $2", [runId, worker]);
      if (before.since === null) return;
      const { rows } = await client.query<{ waiting: boolean; seconds: number }>(
        `SELECT EXISTS (SELECT 1 FROM batch_throttled_runs WHERE run_id = $1) AS waiting,
                round(extract(epoch FROM now() - $2::timestamptz))::int AS seconds`,
        [runId, before.since],
      );
      const after = rows[0] as { waiting: boolean; seconds: number };
      if (after.waiting) return;
      // the last worker resumed: the stale rows of workers that stopped waiting go with the throttle
      await client.query("DELETE FROM batch_throttles WHERE run_id = $1", [runId]);
      await appendEvent(client, runId, "resumed", { step: "chunk", actor: worker, detail: `after ${after.seconds} s` });
    }),
  );
}

async function readBefore(client: PoolClient, runId: number): Promise<Before> {
  const { rows } = await client.query<Before>(
    `SELECT (SELECT since FROM batch_throttled_runs WHERE run_id = $1) AS since,
            count(*)::int AS rows, max(seen_at) AS "lastSeen"
       FROM batch_throttles WHERE run_id = $1`,
    [runId],
  );
  return rows[0] as Before;
}

/** The run's throttle now, or null. */
export async function readRunThrottle(client: PoolClient, runId: number): Promise<RunThrottle | null> {
  const { rows } = await client.query<Omit<RunThrottle, "text">>(
    `SELECT signal, figure, threshold, unit, detail, since, seen_at AS "seenAt", workers::int
       FROM batch_throttled_runs WHERE run_id = $1`,
    [runId],
  );
  const throttle = rows[0];
  if (!throttle) return null;
  const reading = { ...throttle, detail: throttle.detail ?? undefined };
  return { ...reading, text: describeThrottle(reading) };
}
