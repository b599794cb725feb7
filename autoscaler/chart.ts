import { formatCount } from "../src/terminal/format";
import type { Poll } from "./timeline";

/**
 * The timeline as a small text chart for a terminal: one line per poll (polls grouped when there
 * are many), the query's value as a bar, the pods as `o` running, `+` started and `-` stopped by
 * scaling.
 */

const BAR_WIDTH = 30;
const MAX_LINES = 40;

/** Polls grouped in runs of equal size: the first one's readings, the events of all. */
function group(polls: Poll[]): Poll[] {
  const size = Math.ceil(polls.length / MAX_LINES);
  const groups: Poll[] = [];
  for (let i = 0; i < polls.length; i += size) {
    const members = polls.slice(i, i + size);
    const sum = (pick: (poll: Poll) => number) => members.reduce((total, poll) => total + pick(poll), 0);
    groups.push({
      ...(members[0] as Poll),
      started: sum((poll) => poll.started),
      replaced: sum((poll) => poll.replaced),
      stopped: sum((poll) => poll.stopped),
      exited: sum((poll) => poll.exited),
      idle: sum((poll) => poll.idle),
      faults: members.flatMap((poll) => poll.faults),
      error: members.find((poll) => poll.error)?.error,
    });
  }
  return groups;
}

export function renderChart(polls: Poll[], title: string): string {
  const highest = Math.max(1, ...polls.map((poll) => poll.query ?? 0));
  const valueWidth = Math.max(5, formatCount(highest).length);
  const lines = [title, `${"time".padStart(7)}  ${"query".padStart(valueWidth)} ${"".padEnd(BAR_WIDTH)}  pods`];
  for (const poll of group(polls)) {
    const value = poll.query === null ? "failed".padStart(valueWidth) : formatCount(poll.query).padStart(valueWidth);
    const bar = "#".repeat(poll.query === null ? 0 : Math.round((poll.query / highest) * BAR_WIDTH));
    const pods = "o".repeat(poll.running) + "+".repeat(poll.started) + "-".repeat(poll.stopped);
    const notes = [
      poll.replaced > 0 ? `${poll.replaced} replaced` : "",
      poll.idle > 0 ? `${poll.idle} exited idle` : "",
      ...poll.faults,
      poll.error ? `query failed: ${poll.error}` : "",
    ].filter(Boolean);
    lines.push(
      `${`${poll.t.toFixed(1)}s`.padStart(7)}  ${value} ${bar.padEnd(BAR_WIDTH)}  ${pods.padEnd(8)} ${notes.join("; ")}`.trimEnd(),
    );
  }
  return lines.join("\n");
}
