import { setTimeout as sleep } from "node:timers/promises";
import type { RecordFunction } from "./process-records";

/** How the injected latency varies from record to record. */
export const DELAY_SPREADS = ["fixed", "exponential"] as const;
export type DelaySpread = (typeof DELAY_SPREADS)[number];

export interface FaultSettings {
  /** Latency added to every record (PROCESS_DELAY_MS), standing in for I/O. */
  delayMs: number;
  /**
   * "fixed": every record waits delayMs. "exponential": a record waits a time drawn by a hash
   * of its id from the exponential distribution of mean delayMs (PROCESS_DELAY_SPREAD), the
   * long tail of I/O: a record in a hundred waits 4.6 times the mean or more.
   */
  delaySpread?: DelaySpread;
  /** Share of rows that fail (FAIL_RATE), chosen by a hash of the id: the same rows every time. */
  failRate: number;
  /** When set, a failing row fails only its first N attempts (FAIL_FIRST_ATTEMPTS). */
  failFirstAttempts: number | undefined;
}

/** A deterministic hash of a row id to [0, 1) (murmur3's 32-bit finaliser). */
export function rowFraction(id: number): number {
  let h = (id ^ Math.floor(id / 2 ** 32)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}

/** A record's injected latency: the same for a row every time it is processed. */
export function recordDelayMs(id: number, faults: FaultSettings): number {
  if (faults.delaySpread !== "exponential") return faults.delayMs;
  // another hash of the id than FAIL_RATE's, so that the slow rows are not the failing ones
  return -Math.log(1 - rowFraction(2 * id + 1)) * faults.delayMs;
}

/** Whether FAIL_RATE selects this row to fail on this attempt. */
export function failsOnAttempt(id: number, attempt: number, faults: FaultSettings): boolean {
  if (rowFraction(id) >= faults.failRate) return false;
  return faults.failFirstAttempts === undefined || attempt <= faults.failFirstAttempts;
}

/**
 * Wraps a job's function with the latency and failures the settings ask for, for demos and
 * tests; `key` is the property holding a record's key.
 */
export function withInjectedFaults(logic: RecordFunction, key: string, faults: FaultSettings): RecordFunction {
  if (faults.delayMs === 0 && faults.failRate === 0) return logic;
  return async (record, ctx) => {
    if (faults.delayMs > 0) {
      // Not woken by ctx.signal: making one per record costs more than a 2 ms record's own timer.
      // Unreferenced, an abandoned record's wait keeps no process alive; its lane's timer does
      // while the record counts.
      await sleep(recordDelayMs(Number(record[key]), faults), undefined, { ref: false });
      if (ctx.aborted) throw new Error("record abandoned");
    }
    if (failsOnAttempt(Number(record[key]), ctx.attempt, faults)) {
      throw new Error(`injected failure (FAIL_RATE) on attempt ${ctx.attempt}`);
    }
    return logic(record, ctx);
  };
}
