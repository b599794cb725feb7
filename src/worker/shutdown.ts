import type { WorkerEvents } from "graphile-worker";

const draining = new AbortController();

/**
 * Aborted when this process's worker pool begins a graceful shutdown (SIGTERM, SIGINT):
 * chunks stop starting records, commit what is in flight and hand the rest back.
 */
export const drainingSignal: AbortSignal = draining.signal;

export function drainOnShutdown(events: WorkerEvents): void {
  events.on("pool:gracefulShutdown", () => draining.abort(new Error("worker is shutting down")));
}
