import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { type PrimaryAndStandby, standbyUnavailableReason, startPrimaryAndStandby } from "../support/standby";

/**
 * The tests' streaming replica: a primary and a standby of their own, made with pg_basebackup.
 * What other tests rely on: writes reach the standby, a paused replay shows as lag on both
 * sides (the standby's own view and the primary's pg_stat_replication), and resuming catches up.
 */

/** How long the machine may take to show a state, however busy it is. */
const STATE_TIMEOUT_MS = 60_000;

async function poll<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${STATE_TIMEOUT_MS / 1000} s`);
    await sleep(200);
  }
}

interface ReplicationRow {
  state: string;
  behind: boolean;
}

describe("a primary and a streaming standby", () => {
  let servers: PrimaryAndStandby;
  let primary: pg.Client;
  let standby: pg.Client;

  beforeAll(async () => {
    const reason = standbyUnavailableReason();
    if (reason) throw new Error(reason);
    servers = await startPrimaryAndStandby();
    primary = new pg.Client({ connectionString: servers.primaryUrl });
    standby = new pg.Client({ connectionString: servers.standbyUrl });
    await primary.connect();
    await standby.connect();
    await primary.query("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())");
  }, 180_000);

  afterAll(async () => {
    await primary?.end();
    await standby?.end();
    await servers?.stop();
  });

  async function replication(): Promise<ReplicationRow | undefined> {
    const { rows } = await primary.query<ReplicationRow>(
      "SELECT state, replay_lsn < sent_lsn AS behind FROM pg_stat_replication",
    );
    expect(rows.length).toBeLessThanOrEqual(1);
    return rows[0];
  }

  it("is a standby in recovery, streaming from the primary", async () => {
    const { rows } = await standby.query<{ recovery: boolean }>("SELECT pg_is_in_recovery() AS recovery");
    expect(rows[0]?.recovery).toBe(true);
    await expect(standby.query("CREATE TABLE elsewhere (id int)")).rejects.toThrow(/read-only/);
    const row = await poll("the primary lists the standby as streaming", async () => {
      const row = await replication();
      return row?.state === "streaming" ? row : undefined;
    });
    expect(row.state).toBe("streaming");
  });

  it("replays a write made on the primary", async () => {
    await primary.query("INSERT INTO marks (id) VALUES (1)");
    await servers.waitForReplay();
    const { rows } = await standby.query<{ id: number }>("SELECT id FROM marks ORDER BY id");
    expect(rows).toEqual([{ id: 1 }]);
    expect(await servers.replayLagSeconds()).toBe(0);
  });

  it("falls behind while replay is paused, on its own view and on the primary's, and catches up on resume", async () => {
    await servers.pauseReplay();
    try {
      await primary.query("INSERT INTO marks (id) VALUES (2)");
      const firstLag = await poll("the standby's replay lag is above 0", async () => {
        const lag = await servers.replayLagSeconds();
        return lag > 0 ? lag : undefined;
      });
      await primary.query("INSERT INTO marks (id) VALUES (3)");
      await poll("the standby's replay lag grows", async () => {
        const lag = await servers.replayLagSeconds();
        return lag >= firstLag + 1 ? lag : undefined;
      });
      await poll("the primary's pg_stat_replication shows replay behind", async () => {
        const row = await replication();
        return row?.behind ? row : undefined;
      });
      const { rows } = await standby.query<{ id: number }>("SELECT id FROM marks ORDER BY id");
      expect(rows).toEqual([{ id: 1 }]);
    } finally {
      await servers.resumeReplay();
    }

    await servers.waitForReplay();
    expect(await servers.replayLagSeconds()).toBe(0);
    const { rows } = await standby.query<{ id: number }>("SELECT id FROM marks ORDER BY id");
    expect(rows).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    await poll("the primary's pg_stat_replication shows replay caught up", async () => {
      const row = await replication();
      return row && !row.behind ? row : undefined;
    });
  });
});
