import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { Logger } from "../base/logger";
import { inTransaction, type WithClient } from "../db/pool";
import type { JobDefinition, ThrottleCondition, ThrottleLimits } from "../jobs/define";
import { quoteIdentifier } from "../jobs/job-sql";
import type { ThrottleReading } from "../runs/throttle-state";
import { readPrimaryHealth, readReplayPosition } from "./signals";
import {
  conditionReading,
  type HealthFigures,
  overLimit,
  pendingReplaySeconds,
  resolveLimits,
  type WalMark,
} from "./throttle";

/**
 * The database's health as this process last read it, shared by every chunk it runs: a chunk
 * asks before each slice claims, and the answer comes from memory unless the last reading is
 * older than the check interval; then it is read again (one statement on the primary, one on the
 * standby of REPLICA_DATABASE_URL, one per job with its own condition), once for all the chunks
 * asking. So at most once per interval whatever the number of chunks, and only while chunks ask.
 */

export interface HealthWatchOptions {
  intervalMs: number;
  /** The limits of the environment, over every job's. */
  envLimits: Partial<ThrottleLimits>;
  replicaUrl: string | undefined;
  logger: Logger;
}

/** WAL marks older than this are dropped: a standby further behind reads as this far behind. */
const WAL_MARKS_KEPT_MS = 15 * 60_000;
/** How long the standby of REPLICA_DATABASE_URL may take to connect or answer. */
const REPLICA_TIMEOUT_MS = 5000;
/** How long a job's condition may take to answer. */
const CONDITION_TIMEOUT_MS = 10_000;
/** A job nobody asked about for this long has no chunk running here: its table is read no more. */
const JOB_FORGOTTEN_MS = 60_000;

interface JobWatch {
  job: JobDefinition;
  table: string;
  limits: ThrottleLimits;
  askedAt: number;
  /** Whether a reading has included the job (its table and its condition) yet. */
  read: boolean;
  /** What the job's condition answered at the last reading. */
  condition: ThrottleReading | null;
}

export class HealthWatch {
  private figures: HealthFigures | undefined;
  private readAt = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | undefined;
  private readonly marks: WalMark[] = [];
  private readonly jobs = new Map<string, JobWatch>();
  private replica: Promise<pg.Client> | undefined;
  private failing = false;
  private replicaFailing = false;

  constructor(private readonly options: HealthWatchOptions) {}

  /**
   * The limit `job`'s chunks are over, as of the last reading (null: claim; undefined: no reading
   * has included the job yet): in memory.
   */
  verdict(job: JobDefinition): ThrottleReading | null | undefined {
    const watched = this.watch(job);
    if (!watched.read) return undefined;
    return (this.figures && overLimit(this.figures, watched.limits, watched.table)) ?? watched.condition;
  }

  /**
   * The verdict as of a reading newer than the interval that included the job: one is made now
   * unless there is (every chunk asking meanwhile waits for the same). Never in the background: a
   * reading outlives no chunk, so the pool it borrows from is never closed under it.
   */
  async check(job: JobDefinition, db: WithClient): Promise<ThrottleReading | null> {
    const watched = this.watch(job);
    if (Date.now() - this.readAt >= this.options.intervalMs || !watched.read) await this.refresh(db);
    // a reading under way when the job was first asked about did not include it: the next does
    if (!watched.read) await this.refresh(db);
    return this.verdict(job) ?? null;
  }

  /** Closes the standby's session, if one is open. */
  async close(): Promise<void> {
    const replica = this.replica;
    this.replica = undefined;
    await replica?.then((client) => client.end()).catch(() => undefined);
  }

  private watch(job: JobDefinition): JobWatch {
    let watched = this.jobs.get(job.name);
    if (!watched) {
      watched = {
        job,
        table: `${quoteIdentifier(job.schema)}.${quoteIdentifier(job.table)}`,
        limits: resolveLimits(job.throttle.limits, this.options.envLimits),
        askedAt: 0,
        read: false,
        condition: null,
      };
      this.jobs.set(job.name, watched);
    }
    watched.askedAt = Date.now();
    return watched;
  }

  /** One reading at a time: a chunk asking meanwhile waits for it. */
  private refresh(db: WithClient): Promise<void> {
    this.reading ??= this.read(db).finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(db: WithClient): Promise<void> {
    const now = Date.now();
    for (const [name, watched] of this.jobs) if (now - watched.askedAt > JOB_FORGOTTEN_MS) this.jobs.delete(name);
    const watched = [...this.jobs.values()];
    try {
      const [primary, replayBytes] = await Promise.all([
        db((client) => readPrimaryHealth(client, [...new Set(watched.map((job) => job.table))])),
        this.readReplica(),
      ]);
      const at = Date.now();
      const previous = this.marks[this.marks.length - 1];
      this.marks.push({ at, walBytes: primary.walBytes });
      while ((this.marks[0]?.at ?? at) < at - WAL_MARKS_KEPT_MS) this.marks.shift();
      const standbys = [primary.slowestReplayBytes, replayBytes].filter((bytes) => bytes !== null);
      this.figures = {
        replicaLagSeconds: Math.max(
          primary.replayLagSeconds,
          ...standbys.map((bytes) => pendingReplaySeconds(this.marks, bytes, at)),
        ),
        vacuumedTables: primary.vacuumedTables,
        walMegabytesPerSecond: previous
          ? (primary.walBytes - previous.walBytes) / 1_048_576 / Math.max((at - previous.at) / 1000, 0.001)
          : 0,
        lockWaitSeconds: primary.lockWaitSeconds,
        activeSessions: primary.activeSessions,
      };
      for (const job of watched) if (job.job.throttle.when) job.condition = await this.askCondition(db, job);
      for (const job of watched) job.read = true;
      if (this.failing) this.options.logger.info("database health read again");
      this.failing = false;
    } catch (error) {
      // unknown health holds nobody back: a database that cannot answer fails the slices themselves
      this.figures = undefined;
      for (const job of watched) job.read = true;
      if (!this.failing)
        this.options.logger.warn({ err: error }, "database health could not be read; claiming as if healthy");
      this.failing = true;
    } finally {
      this.readAt = Date.now();
    }
  }

  /**
   * The job's own condition. One that fails, or does not answer within CONDITION_TIMEOUT_MS,
   * holds the job back with that as the reason: a check that cannot tell is no permission to go
   * on, and the reason shows where the run does.
   */
  private async askCondition(db: WithClient, watched: JobWatch): Promise<ThrottleReading | null> {
    const when = watched.job.throttle.when as ThrottleCondition;
    const timer = new AbortController();
    try {
      const answer =
        typeof when === "function"
          ? when({
              job: watched.job.name,
              query: async (text, values) => (await db((client) => client.query(text, values))).rows,
            })
          : db((client) =>
              inTransaction(client, async () => {
                const { rows } = await client.query({ text: when.sql, rowMode: "array" });
                const first = (rows[0] as unknown[] | undefined)?.[0];
                return first === null || first === undefined ? null : String(first);
              }, [`SET LOCAL statement_timeout = ${CONDITION_TIMEOUT_MS}`]),
            );
      const late = sleep(CONDITION_TIMEOUT_MS, undefined, { signal: timer.signal }).then(() => {
        throw new Error(`no answer within ${CONDITION_TIMEOUT_MS / 1000} s`);
      });
      late.catch(() => undefined);
      const reason = await Promise.race([answer, late]);
      return reason === null || reason === undefined || reason === "" ? null : conditionReading(String(reason));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return conditionReading(`the job's throttle condition failed: ${message}`);
    } finally {
      timer.abort();
    }
  }

  /** The standby's replay position (null without REPLICA_DATABASE_URL or when it cannot be read). */
  private async readReplica(): Promise<number | null> {
    const url = this.options.replicaUrl;
    if (!url) return null;
    try {
      this.replica ??= this.connectReplica(url);
      const position = await readReplayPosition(await this.replica);
      this.replicaFailing = false;
      return position;
    } catch (error) {
      if (!this.replicaFailing) {
        this.options.logger.warn(
          { err: error },
          "the standby of REPLICA_DATABASE_URL could not be read; its lag is left out until it can",
        );
      }
      this.replicaFailing = true;
      await this.close();
      return null;
    }
  }

  private async connectReplica(url: string): Promise<pg.Client> {
    // a standby that does not answer must not hold up the reading every chunk waits for
    const client = new pg.Client({
      connectionString: url,
      application_name: "pg-batch health",
      connectionTimeoutMillis: REPLICA_TIMEOUT_MS,
      query_timeout: REPLICA_TIMEOUT_MS,
    });
    client.on("error", () => {
      this.replica = undefined;
    });
    await client.connect();
    return client;
  }
}
