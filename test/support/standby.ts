import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "../../src/base/free-port";
import {
  collectOutput,
  lastProblem,
  serverDirectory,
  serverProcess,
  serverUser,
  spawnOptions,
  startEmbeddedPostgres,
} from "../../src/db/embedded";
import type { PostgresBinaries } from "../../src/db/embedded-binaries";
import { quietLogger } from "./database";

/**
 * A primary and a streaming standby of the tests' own, made with Debian's PostgreSQL 15
 * (`pg_basebackup -R`): both servers share a major version, which the embedded package's
 * PostgreSQL 18 cannot give a standby made from Debian's programs. The shared test server is
 * never touched.
 */

const DEBIAN_BIN = "/usr/lib/postgresql/15/bin";
const PROGRAMS = ["initdb", "postgres", "pg_basebackup"] as const;
/** How long a standby may take to replay what the primary wrote, on a busy machine. */
const REPLAY_TIMEOUT_MS = 60_000;

export interface PrimaryAndStandby {
  primaryUrl: string;
  standbyUrl: string;
  /** Stops replay on the standby; it keeps receiving WAL, as a standby behind on replay does. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once the standby has replayed everything the primary had written when called. */
  waitForReplay(): Promise<void>;
  /** The standby's own replay lag: 0 when it has replayed all it received, else the age of its last replayed commit. */
  replayLagSeconds(): Promise<number>;
  /** Stops the standby, then the primary, and removes their data. */
  stop(): Promise<void>;
}

/** Why a primary and a standby cannot be started here, or undefined when they can. */
export function standbyUnavailableReason(): string | undefined {
  const missing = PROGRAMS.map((program) => path.join(DEBIAN_BIN, program)).filter((file) => !existsSync(file));
  if (missing.length === 0) return undefined;
  return `${missing.join(", ")} missing: the streaming replica needs Debian's postgresql-15 package (.ci/run installs it)`;
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function startPrimaryAndStandby(): Promise<PrimaryAndStandby> {
  const reason = standbyUnavailableReason();
  if (reason) throw new Error(reason);
  const binaries: PostgresBinaries = {
    version: "15",
    initdb: path.join(DEBIAN_BIN, "initdb"),
    postgres: path.join(DEBIAN_BIN, "postgres"),
  };
  // initdb's pg_hba.conf already lets 127.0.0.1 connect for replication, with the password
  const primary = await startEmbeddedPostgres(quietLogger, { binaries, settings: { wal_level: "replica" } });
  const user = await serverUser();
  const { dir, dataDir } = await serverDirectory("pg-batch-standby-", user);
  const removeAll = async () => {
    await primary.stop();
    await fs.rm(dir, { recursive: true, force: true });
  };

  // -R writes standby.signal and a primary_conninfo with the password, into a directory of its own
  const primaryUrl = new URL(primary.url);
  const copy = spawn(
    path.join(DEBIAN_BIN, "pg_basebackup"),
    [
      `--dbname=postgresql://${primaryUrl.username}@${primaryUrl.host}/`,
      `--pgdata=${dataDir}`,
      "--write-recovery-conf",
      "--wal-method=stream",
      "--checkpoint=fast",
      "--no-sync",
    ],
    { ...spawnOptions(user), env: { ...spawnOptions(user).env, PGPASSWORD: decodeURIComponent(primaryUrl.password) } },
  );
  const copyOutput = collectOutput(copy, () => undefined);
  const [copyCode] = (await once(copy, "close")) as [number | null];
  if (copyCode !== 0) {
    await removeAll();
    throw new Error(`pg_basebackup failed (status ${copyCode}): ${lastProblem(copyOutput())}`);
  }

  const port = await freePort();
  const standby = serverProcess({
    postgres: binaries.postgres,
    dataDir,
    port,
    user,
    // the standby reports its replay position every second, so the primary's view is fresh
    settings: { hot_standby: "on", wal_receiver_status_interval: "1s" },
    log: quietLogger,
  });
  try {
    await standby.start();
  } catch (error) {
    await removeAll();
    throw error;
  }
  const standbyUrl = new URL(primary.url);
  standbyUrl.port = String(port);

  return {
    primaryUrl: primary.url,
    standbyUrl: standbyUrl.toString(),
    async pauseReplay() {
      await withClient(standbyUrl.toString(), (client) => client.query("SELECT pg_wal_replay_pause()"));
    },
    async resumeReplay() {
      await withClient(standbyUrl.toString(), (client) => client.query("SELECT pg_wal_replay_resume()"));
    },
    async waitForReplay() {
      const target = await withClient(primary.url, async (client) => {
        const { rows } = await client.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
        return rows[0]?.lsn;
      });
      const deadline = Date.now() + REPLAY_TIMEOUT_MS;
      await withClient(standbyUrl.toString(), async (client) => {
        for (;;) {
          const { rows } = await client.query<{ replayed: boolean; at: string }>(
            "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS replayed, pg_last_wal_replay_lsn()::text AS at",
            [target],
          );
          if (rows[0]?.replayed) return;
          if (Date.now() > deadline) {
            throw new Error(
              `the standby replayed to ${rows[0]?.at}, not to ${target}, within ${REPLAY_TIMEOUT_MS / 1000} s`,
            );
          }
          await sleep(100);
        }
      });
    },
    async replayLagSeconds() {
      return withClient(standbyUrl.toString(), async (client) => {
        const { rows } = await client.query<{ lag: number }>(
          `SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                  ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag`,
        );
        // NULL only before the standby has replayed its first commit
        return rows[0]?.lag ?? 0;
      });
    },
    async stop() {
      await standby.shutdown("fast");
      await removeAll();
    },
  };
}
