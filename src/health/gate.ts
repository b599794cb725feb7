import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../base/logger";
import type { WithClient } from "../db/pool";
import type { JobDefinition } from "../jobs/define";
import { getRun } from "../runs/runs";
import { describeThrottle, recordThrottle, type ThrottleSignal } from "../runs/throttle-state";
import type { HealthWatch } from "./health-watch";
import { backoffMs } from "./throttle";

/**
 * The throttle gate a chunk passes before each slice claims: while the database's health is over
 * one of the job's limits, the chunk claims nothing (its slice in flight finishes), waits with a
 * bounded, jittered backoff, reading the health again, and goes on by itself once it clears. It
 * keeps its chunk meanwhile; a shutdown or a cancel of the run ends the wait.
 */

/** What the gate reports, for metrics. */
export interface ThrottleObserver {
  /** A chunk of `job` began waiting on `reason` (or went on waiting on another). */
  throttleBegan(job: string, reason: ThrottleSignal): void;
  throttleEnded(job: string, reason: ThrottleSignal): void;
  /** Seconds a chunk of `job` spent waiting on `reason`, as they pass. */
  throttleWaited(job: string, reason: ThrottleSignal, seconds: number): void;
}

/** A throttled chunk refreshes its run's record at least this often (src/runs/throttle-state.ts). */
const RECORD_EVERY_MS = 5000;

export interface GateRequest {
  db: WithClient;
  job: JobDefinition;
  runId: number;
  worker: string;
  log: Logger;
  draining: AbortSignal;
  abort: AbortSignal;
  /** Run statuses under which the chunk goes on waiting; any other ends the wait. */
  keepsRunning: ReadonlySet<string>;
  observer?: Partial<ThrottleObserver>;
}

export class ThrottleGate {
  constructor(
    private readonly watch: HealthWatch,
    private readonly intervalMs: number,
  ) {}

  /** Closes what the health watch keeps open (the standby's session). */
  close(): Promise<void> {
    return this.watch.close();
  }

  /** Whether a slice of `job` may claim now, as far as the last reading tells: in memory. */
  mayClaim(job: JobDefinition): boolean {
    return this.watch.verdict(job) === null;
  }

  /**
   * Returns once the chunk may claim (or the worker is shutting down: the caller looks), or with
   * the run's status when the run stopped keeping its chunks running (a cancel) meanwhile.
   */
  async pass(request: GateRequest): Promise<string | undefined> {
    let reading = await this.watch.check(request.job, request.db);
    if (!reading) return undefined;
    const { db, job, runId, worker, log, observer } = request;
    const signals = AbortSignal.any([request.draining, request.abort]);
    log.info({ throttle: reading }, `throttled: ${describeThrottle(reading)}; claiming nothing until it clears`);
    observer?.throttleBegan?.(job.name, reading.signal);
    let recordedAt = Number.NEGATIVE_INFINITY;
    try {
      for (let attempt = 1; ; attempt++) {
        if (Date.now() - recordedAt >= RECORD_EVERY_MS) {
          // what the run shows is no reason to fail the chunk: the wait goes on, and tries again
          await recordThrottle(db, runId, worker, reading).catch((error: unknown) =>
            log.warn({ err: error }, "the throttle could not be recorded on the run"),
          );
          recordedAt = Date.now();
        }
        const began = performance.now();
        await sleep(backoffMs(attempt, this.intervalMs, Math.random()), undefined, { signal: signals }).catch(
          () => undefined,
        );
        observer?.throttleWaited?.(job.name, reading.signal, (performance.now() - began) / 1000);
        if (signals.aborted) return undefined;
        const run = await db((client) => getRun(client, runId));
        // a run gone is for the next slice to find
        if (run && !request.keepsRunning.has(run.status)) return run.status;
        const next = await this.watch.check(job, db);
        if (!next) {
          log.info(`throttle cleared (${describeThrottle(reading)} before): claiming again`);
          return undefined;
        }
        if (next.signal !== reading.signal) {
          log.info({ throttle: next }, `still throttled, now: ${describeThrottle(next)}`);
          observer?.throttleEnded?.(job.name, reading.signal);
          observer?.throttleBegan?.(job.name, next.signal);
          recordedAt = Number.NEGATIVE_INFINITY;
        }
        reading = next;
      }
    } finally {
      observer?.throttleEnded?.(job.name, reading.signal);
      await recordThrottle(db, runId, worker, null).catch((error: unknown) =>
        log.warn({ err: error }, "the end of a throttle could not be recorded; it shows until it goes stale"),
      );
    }
  }
}
