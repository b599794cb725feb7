import { round } from "./harness";

/**
 * Start-up, steady rate and tail of worker processes, from their debug logs (LOG_LEVEL=debug,
 * JSON on stderr): every committed slice logs "slice committed" with its rows and its duration
 * in ms, at its commit.
 *
 *  - start-up: from the first process's spawn to the start of the first slice (its commit time
 *    less its duration): Node, modules, connections, the job fetch and the chunk's start;
 *  - steady rate: rows committed between the commit that takes the run past 10% of its rows and
 *    the one that takes it past 90%, over the time between them;
 *  - tail: from that 90% commit to the last process's exit (the last chunks, fewer than the
 *    slots, the finish step and the process's shutdown).
 */

export interface SliceCommit {
  at: number;
  rows: number;
  ms: number;
}

export function sliceCommits(stderr: string): SliceCommit[] {
  const commits: SliceCommit[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.includes('"slice committed"')) continue;
    try {
      const entry = JSON.parse(line) as { time: string; rows: number; ms: number };
      commits.push({ at: Date.parse(entry.time), rows: entry.rows, ms: entry.ms });
    } catch {
      // not a log line
    }
  }
  return commits;
}

export interface Phases {
  rows: number;
  /** rows / (last exit - first spawn) */
  wallRowsPerSecond: number;
  wallSeconds: number;
  startupSeconds: number;
  steadyRowsPerSecond: number;
  tailSeconds: number;
  slices: number;
}

export function phases(commits: SliceCommit[], spawnedAt: number, exitedAt: number): Phases {
  const sorted = [...commits].sort((a, b) => a.at - b.at);
  const total = sorted.reduce((sum, c) => sum + c.rows, 0);
  const wallSeconds = (exitedAt - spawnedAt) / 1000;
  const firstStart = Math.min(...sorted.map((c) => c.at - c.ms));
  let done = 0;
  let at10: { at: number; done: number } | undefined;
  let at90: { at: number; done: number } | undefined;
  for (const commit of sorted) {
    done += commit.rows;
    if (!at10 && done >= 0.1 * total) at10 = { at: commit.at, done };
    if (!at90 && done >= 0.9 * total) at90 = { at: commit.at, done };
  }
  const steady =
    at10 && at90 && at90.at > at10.at ? (at90.done - at10.done) / ((at90.at - at10.at) / 1000) : Number.NaN;
  return {
    rows: total,
    wallRowsPerSecond: round(total / wallSeconds),
    wallSeconds: round(wallSeconds, 2),
    startupSeconds: round((firstStart - spawnedAt) / 1000, 2),
    steadyRowsPerSecond: round(steady),
    tailSeconds: at90 ? round((exitedAt - at90.at) / 1000, 2) : Number.NaN,
    slices: sorted.length,
  };
}
