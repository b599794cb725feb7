import { setTimeout as sleep } from "node:timers/promises";
import type { WithClient } from "./pool";

/**
 * Telling a lost database from a failed statement, and waiting for it to come back.
 *
 * A restart, a crash or a failover of PostgreSQL reaches a client as one of these: the session
 * ended by the server (57P01 admin shutdown, 57P02 crash shutdown), a refused or hung connection
 * while it is down, "the database system is starting up / shutting down" (57P03) while it
 * recovers, or a socket that closed under a query (node-postgres gives those no code).
 */

const LOST_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

const LOST_MESSAGES =
  /Connection terminated|connection error|not queryable|Connection ended|server closed the connection|timeout exceeded when trying to connect/i;

export function isConnectionLost(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && LOST_CODES.has(code)) return true;
  if (error instanceof AggregateError) return error.errors.some(isConnectionLost);
  return LOST_MESSAGES.test(error.message);
}

export interface ReconnectOptions {
  /** How long to keep trying, in all, before the last error is thrown. */
  timeoutMs: number;
  /** Stops the waiting at once (a worker's shutdown). */
  signal?: AbortSignal;
  /** Told of each lost connection before the wait that follows it. */
  onLost?: (error: unknown, attempt: number) => void;
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

/**
 * Runs `attempt` until it succeeds or fails for another reason than a lost connection, waiting
 * with growing, jittered delays in between. `attempt` must be safe to repeat: one transaction
 * that either committed or did not, and that finds its work done if it did.
 */
export async function retryWhileDisconnected<T>(attempt: () => Promise<T>, options: ReconnectOptions): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (error) {
      const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (attempts - 1)) * (0.5 + Math.random() / 2);
      if (!isConnectionLost(error) || options.signal?.aborted || performance.now() + delay > deadline) throw error;
      options.onLost?.(error, attempts);
      await sleep(delay, undefined, { signal: options.signal }).catch(() => {
        throw error;
      });
    }
  }
}

/** `db` whose calls ride out a lost connection; each call must be one transaction safe to repeat. */
export function reconnecting(db: WithClient, options: ReconnectOptions): WithClient {
  return (fn) => retryWhileDisconnected(() => db(fn), options);
}
