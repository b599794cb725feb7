/**
 * The database connections one worker process opens, at most: what the connection budget of a
 * deployment (README, "Connection budget"; test/k8s.test.ts) is computed from.
 */

/**
 * graphile-worker's pool: a client per running job (a chunk holds one for each slice, a step for
 * its transaction; a free slot uses one to fetch its next job), one for LISTEN, one for the
 * batched recording of jobs' ends.
 */
export function workerPoolSize(workers: number): number {
  return workers + 2;
}

/**
 * The pool, the liveness session (src/worker/liveness.ts), and one short-lived connection: the
 * start-up check (src/db/preflight.ts) before the pool opens, or the release of a lost
 * pool's jobs (src/worker/pool-watchdog.ts) after it has closed.
 */
export function connectionsPerWorker(workers: number): number {
  return workerPoolSize(workers) + 2;
}
