import type pg from "pg";

/**
 * The database's health, read in one statement on the primary (and, with REPLICA_DATABASE_URL,
 * one on a standby): what src/health/health-watch.ts reads once per check interval for every
 * chunk of the process.
 */

/**
 * The application_name of the workers' sessions: the lock-wait signal counts only sessions that
 * one of these blocks, whatever pod it runs in. Other sessions of pg-batch (status, the dashboard,
 * seeding) never hold a claimed row.
 */
export const WORKER_SESSION_PREFIX = "pg-batch worker ";

export function workerSessionName(pod: string): string {
  // PostgreSQL keeps 63 bytes of it
  return `${WORKER_SESSION_PREFIX}${pod}`.slice(0, 63);
}

/** `url` with the workers' application_name, for a pool made from a connection string (graphile-worker's). */
export function withWorkerSessionName(url: string, pod: string): string {
  const separator = url.includes("?") ? "&" : "?";
  return `${url}${separator}application_name=${encodeURIComponent(workerSessionName(pod))}`;
}

/** One reading of the primary. */
export interface PrimaryReading {
  /** WAL written since the server's start of WAL, in bytes: the rate is the difference of two readings. */
  walBytes: number;
  /** The largest replay_lag pg_stat_replication shows, in seconds (0 with no standby or none measured). */
  replayLagSeconds: number;
  /** The replay position of the standby furthest behind, in bytes of WAL; null with no standby. */
  slowestReplayBytes: number | null;
  /** Those of `tables` a VACUUM or autovacuum is working on. */
  vacuumedTables: string[];
  /** The longest wait of a session (not a worker's) of this database blocked by a worker's session, in seconds. */
  lockWaitSeconds: number;
  /** The server's client sessions running a statement now, the workers' and this one left out. */
  activeSessions: number;
}

/**
 * Statistics views and functions only: no table is locked. pg_locks takes the lock manager's
 * partition locks for a moment, and pg_blocking_pids is called for waiting sessions alone.
 * Another role's vacuum progress and standbys' positions are visible to members of
 * pg_read_all_stats (sql/roles.sql grants it to batch_worker); without it they read as none.
 * Vacuums and lock waits count in this database only: other databases' are none of the job's,
 * and their tables' oids may be the same. clock_timestamp(), not now(): the wait is measured at
 * the reading, not at a transaction's start.
 * Active sessions count on the whole server, whose CPU and disks every database shares, and
 * leave out the workers' own: the limit is on the load of others, the application's. The
 * workers' sessions stop being active as soon as they wait, so counting them would make a run
 * throttle on itself, flapping between claiming and waiting at its own size (which WORKERS and
 * the pod count already bound) whatever the application does. Another role's state shows to
 * pg_read_all_stats only; without it those sessions read as not active.
 */
const READ_PRIMARY = `
SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8 AS wal_bytes,
       coalesce((SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication), 0)::float8 AS replay_lag_s,
       (SELECT min(replay_lsn - '0/0'::pg_lsn) FROM pg_stat_replication)::float8 AS slowest_replay_bytes,
       ARRAY(SELECT name FROM unnest($1::text[]) AS name
              WHERE to_regclass(name) IN (SELECT relid FROM pg_stat_progress_vacuum
                                           WHERE datname = current_database())) AS vacuumed_tables,
       coalesce((SELECT max(extract(epoch FROM clock_timestamp() - l.waitstart))
                   FROM pg_locks l JOIN pg_stat_activity waiting ON waiting.pid = l.pid
                  WHERE NOT l.granted AND l.waitstart IS NOT NULL
                    AND waiting.datname = current_database()
                    AND waiting.application_name NOT LIKE $2
                    AND EXISTS (SELECT FROM pg_stat_activity holder
                                 WHERE holder.pid = ANY (pg_blocking_pids(l.pid))
                                   AND holder.application_name LIKE $2)), 0)::float8 AS lock_wait_s,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
           AND application_name NOT LIKE $2)::int AS active_sessions`;

/** Reads the primary's health; `tables`: the quoted schema.table names of the jobs whose chunks run. */
export async function readPrimaryHealth(client: pg.ClientBase, tables: string[]): Promise<PrimaryReading> {
  const { rows } = await client.query(READ_PRIMARY, [tables, `${WORKER_SESSION_PREFIX}%`]);
  const row = rows[0];
  return {
    walBytes: row.wal_bytes,
    replayLagSeconds: row.replay_lag_s,
    slowestReplayBytes: row.slowest_replay_bytes,
    vacuumedTables: row.vacuumed_tables,
    lockWaitSeconds: row.lock_wait_s,
    activeSessions: row.active_sessions,
  };
}

/**
 * A standby's replay position, in bytes of WAL (null on a server that is not in recovery). Its
 * lag is told from the primary's readings (src/health/throttle.ts, replayLagSeconds): `now() -
 * pg_last_xact_replay_timestamp()` grows on a standby that has replayed everything of an idle
 * primary.
 */
export async function readReplayPosition(client: pg.ClientBase): Promise<number | null> {
  const { rows } = await client.query(
    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::float8 AS replay_bytes WHERE pg_is_in_recovery()",
  );
  return rows[0]?.replay_bytes ?? null;
}
