import { randomInt } from "node:crypto";
import os from "node:os";
import pg from "pg";
import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";

/**
 * Takes back what dead workers and lost jobs left behind, one connection at a time on the
 * liveness session. Handed in by the entry that composes the worker (workflows/recovery.ts):
 * the runtime knows no workflow.
 */
export type Recover = (db: WithClient) => Promise<void>;

/**
 * Proof of life of this worker process, and its share of recovering dead ones.
 *
 * On its first job pool it opens one session of its own (not from the pool: a pooled
 * connection comes and goes), asks the server to probe that connection with TCP keepalives,
 * takes a session advisory lock under a random key and registers the pool in worker_sessions
 * with that key. Then, before the pool takes its first job, and every few seconds after, it
 * runs the recovery it was given (releasing dead workers' jobs, healing stranded chunks and
 * steps): a `--once` pod, which may live a second, releases what dead workers hold and takes
 * it up. Every few seconds it also sets its heartbeat. A lost session is opened again and the
 * lock taken again.
 */
export class WorkerLiveness {
  private readonly lockKey = randomInt(1, 2 ** 47);
  private readonly pools = new Set<string>();
  private registering: Promise<void> | undefined;
  private session: Promise<pg.Client> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** A slow database must not pile ticks up. */
  private ticking = false;
  /** The session runs one thing at a time: a heartbeat, a recovery (a transaction). */
  private sessionWork: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly options: { url: string; pod: string; deadAfterMs: number; logger: Logger; recover: Recover },
  ) {}

  /** The pause between heartbeats and recoveries: a few in every WORKER_DEAD_AFTER_S. */
  get intervalMs(): number {
    return Math.max(500, Math.floor(this.options.deadAfterMs / 4));
  }

  /**
   * Registers a job pool of this process before it takes jobs. Never rejects: a pool that
   * cannot register now (database down) is registered by the next heartbeat.
   */
  register(poolId: string): Promise<void> {
    if (!this.pools.has(poolId)) {
      this.pools.add(poolId);
      this.registering = this.serially(async () => {
        try {
          await this.heartbeat();
        } catch (error) {
          this.options.logger.warn({ err: error, pool: poolId }, "worker not registered yet; the next heartbeat will");
          return;
        }
        await this.recover();
      });
      this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
    }
    return this.registering ?? Promise.resolve();
  }

  /**
   * Runs `fn` on the liveness session, after whatever it runs now: for a process's few short
   * statements of its own (a rate limit's takes of tokens), which must not queue behind the
   * chunks for a client of the job pool. Rejects once the session is closed.
   */
  readonly onSession: WithClient = (fn) =>
    this.serially(() => {
      if (this.closed) throw new Error("the worker's liveness session is closed");
      return this.withSession((client) => fn(client as pg.PoolClient));
    });

  /** Deregisters the pools and ends the session (its lock goes with it). */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearInterval(this.timer);
    const session = this.session;
    this.closing = this.serially(async () => {
      const client = await session?.catch(() => undefined);
      if (!client) return;
      await client
        .query("DELETE FROM worker_sessions WHERE pool_id = ANY($1::text[])", [[...this.pools]])
        .catch(() => undefined);
      await client.end().catch(() => undefined);
    });
    return this.closing;
  }

  /** Registers (again, if need be) this process's pools and marks them alive now. */
  private heartbeat(): Promise<void> {
    return this.withSession(async (client) => {
      await client.query(
        `INSERT INTO worker_sessions (pool_id, pod, host, pid, lock_key)
         SELECT pool, $2, $3, $4, $5 FROM unnest($1::text[]) AS pool
         ON CONFLICT (pool_id) DO UPDATE SET lock_key = excluded.lock_key, last_seen = now()`,
        [[...this.pools], this.options.pod, os.hostname(), process.pid, this.lockKey],
      );
    });
  }

  private async tick(): Promise<void> {
    if (this.closed || this.ticking) return;
    this.ticking = true;
    try {
      await this.serially(async () => {
        await this.heartbeat();
        await this.recover();
      });
    } catch (error) {
      this.options.logger.warn({ err: error }, "heartbeat failed; trying again");
    } finally {
      this.ticking = false;
    }
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const done = this.sessionWork.then(work, work);
    this.sessionWork = done.catch(() => undefined);
    return done;
  }

  /** Runs the recovery on the session; a failure waits for the next tick. */
  private async recover(): Promise<void> {
    try {
      // the session is a plain client; the recovery only needs one connection at a time
      await this.options.recover((fn) => this.withSession((client) => fn(client as pg.PoolClient)));
    } catch (error) {
      this.options.logger.warn({ err: error }, "recovery failed; trying again");
    }
  }

  private async withSession<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    this.session ??= this.openSession();
    try {
      return await fn(await this.session);
    } catch (error) {
      this.session = undefined;
      throw error;
    }
  }

  private async openSession(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: `${this.options.pod} liveness`.slice(0, 63),
      keepAlive: true,
    });
    client.on("error", (error) => {
      this.options.logger.warn({ err: error }, "liveness session lost");
      this.session = undefined;
    });
    await client.connect();
    // the server probes the connection, and ends the session of a vanished node
    const idle = Math.max(1, Math.floor(this.options.deadAfterMs / 3000));
    await client.query(
      `SET tcp_keepalives_idle = ${idle}; SET tcp_keepalives_interval = ${Math.min(idle, 5)}; SET tcp_keepalives_count = 3`,
    );
    await client.query("SELECT pg_advisory_lock($1)", [this.lockKey]);
    if (this.closed) await client.end();
    return client;
  }
}
