import type { RunSettings, RunSubset } from "./model";
import { describeSubset } from "./subset";

/**
 * What a run was started with that makes it the run it is, beyond its job and its name: its
 * parameters. Starting an existing run's name again must give the same, or it is refused with
 * the differences; the same returns the run unchanged. Each input is one comparer: another input
 * of the run (a key subset, a canary) adds its own to RUN_INPUTS.
 */

/** The differences of one input between the run as started and a start asked for now, one phrase each. */
type InputComparer = (started: RunSettings, asked: RunSettings) => string[];

/** JSON with every object's keys in order: two values equal as JSON give the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const shown = (value: unknown) => (value === undefined ? "nothing" : canonicalJson(value));

/** `region="eu", not "us"` for each parameter given otherwise, or only in one of the two. */
const paramsDiffer: InputComparer = (started, asked) => {
  const before = started.params ?? {};
  const now = asked.params ?? {};
  const names = [...new Set([...Object.keys(before), ...Object.keys(now)])].sort();
  return names
    .filter((name) => canonicalJson(before[name]) !== canonicalJson(now[name]))
    .map((name) => `${name}=${shown(before[name])}, not ${shown(now[name])}`);
};

/** `subset keys 1 to 100, not all the job's rows`; a file's keys compared by the file's name (not read again). */
const subsetDiffers: InputComparer = (started, asked) => {
  const [before, now] = [started.subset, asked.subset];
  const told = (subset: RunSubset | undefined) =>
    subset && "keysFile" in subset ? `the keys of ${subset.keysFile}` : describeSubset(subset);
  return told(before) === told(now) ? [] : [`subset ${told(before)}, not ${told(now)}`];
};

/** `canary=300, not nothing`: a canary (its rows) is part of what the run was started as. */
const canaryDiffers: InputComparer = (started, asked) =>
  started.canary === asked.canary ? [] : [`canary=${shown(started.canary)}, not ${shown(asked.canary)}`];

const RUN_INPUTS: InputComparer[] = [paramsDiffer, subsetDiffers, canaryDiffers];

/** How a start asked for now differs from the run as it was started; none: it is the same run. */
export function runInputDifferences(started: RunSettings, asked: RunSettings): string[] {
  return RUN_INPUTS.flatMap((differ) => differ(started, asked));
}
