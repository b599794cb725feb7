/**
 * What a batch run is made of, as the rest of the code sees it: its settings, statuses, chunks
 * and history. Types and constants only: every layer may import it, and it imports nothing.
 */

/** The run a command starts or steers when none is named: the one of the job (`users-batch`). */
export const defaultBatchName = (job: string) => `${job}-batch`;

/** What a run was started with; every worker reads these from the run, not its environment. */
export interface RunSettings {
  chunkSize: number;
  maxAttempts: number;
  retryRounds: number;
  retryDelayMs: number;
  chunkMaxAttempts: number;
  /**
   * Rows of round 0, the first by key, that the run works through before it pauses itself for a
   * person to look (`seed enqueue --canary N`): its other chunks wait `deferred` until the resume.
   */
  canary?: number;
  /**
   * The run's parameters as given (JSON): every worker and hook parses them with the job's
   * `params` schema. Absent: none were given.
   */
  params?: Record<string, unknown>;
  /** What the starter ran with, for the record: each worker's own WORKERS and ROW_CONCURRENCY apply. */
  hints?: { workers: number; rowConcurrency: number };
  /** Part of the job's rows, when the run takes no more: the others stay pending for a later run. */
  subset?: RunSubset;
}

/**
 * A run's part of the job's rows, besides the job's `where`: keys from `from` to `to`
 * (inclusive, either alone; decimal text, exact over BIGINT's range), or the keys a file listed,
 * `keys` of them, kept in batch_run_keys.
 */
export type RunSubset = { from?: string; to?: string } | { keysFile: string; keys: number };

export type RunStatus = "pending" | "running" | "paused" | "cancelling" | "cancelled" | "completed" | "failed";

/** Statuses in which a run is over. */
export const ENDED_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(["completed", "failed", "cancelled"]);

export interface Run {
  id: number;
  name: string;
  /** The job (jobs/*.ts) the run runs. */
  job: string;
  status: RunStatus;
  settings: RunSettings;
  round: number;
  totalRecords: number;
  /** Rows completed (the column processed_records). */
  completedRecords: number;
  /** Rows failed for good. */
  failedRecords: number;
  /** Rows failed with attempts left, for a retry round. */
  retryableRecords: number;
  chunksTotal: number;
  chunksDone: number;
  startedAt: Date;
  completedAt: Date | null;
  errorMessage: string | null;
}

export type ChunkStatus = "queued" | "running" | "done" | "failed" | "cancelled" | "deferred";

/** Statuses in which a chunk has not ended: its rows may still be processed. */
export const OPEN_CHUNK_STATUSES: ReadonlySet<ChunkStatus> = new Set(["queued", "running"]);

/** Where a chunk's rows are (keys, exact over BIGINT's range), and since when they are its round's. */
export interface ChunkRange {
  firstId: bigint;
  lastId: bigint;
  plannedAt: Date;
}

export type ChunkEnding = { status: "done" } | { status: "cancelled" } | { status: "failed"; error: string };

/** An entry of a run's history (batch_events) about to be appended. */
export interface EventDetails {
  step: "start" | "plan" | "chunk" | "finish" | "control";
  actor: string;
  round?: number;
  chunkNo?: number;
  /** Merged into the run's counters at this moment. */
  counts?: Record<string, number>;
  detail?: string;
}

/** An entry of a run's history, as recorded. */
export interface RunEvent {
  id: number;
  at: Date;
  event: string;
  step: string;
  round: number | null;
  chunkNo: number | null;
  actor: string;
  counts: Record<string, number>;
  detail: string | null;
}
