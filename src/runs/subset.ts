import type { RunSubset } from "./model";

/** The subset a run is asked to take: keys from `from` to `to` (inclusive, either alone), or the keys of a file. */
export type SubsetRequest = { from?: bigint; to?: bigint } | { keysPath: string };

/** The subset as people read it: "keys 100 to 200", "keys from 100", "the 3 keys of ids.csv". */
export function describeSubset(subset: RunSubset | undefined): string {
  if (!subset) return "all the job's rows";
  if ("keysFile" in subset) return `the ${subset.keys.toLocaleString("en-US")} keys of ${subset.keysFile}`;
  if (subset.from !== undefined && subset.to !== undefined) return `keys ${subset.from} to ${subset.to}`;
  return subset.from !== undefined ? `keys from ${subset.from}` : `keys to ${subset.to}`;
}

/** The request as the run records it at its start; a file's keys are counted once loaded. */
export function subsetOf(request: SubsetRequest | undefined): RunSubset | undefined {
  if (!request) return undefined;
  if ("keysPath" in request) return { keysFile: request.keysPath.split(/[\\/]/).at(-1) ?? "", keys: 0 };
  return {
    ...(request.from === undefined ? {} : { from: String(request.from) }),
    ...(request.to === undefined ? {} : { to: String(request.to) }),
  };
}

/**
 * How a run's subset differs from the one a start of the same name asks for, in words; undefined
 * when they are the same (a file's by its name: its keys are not read again).
 */
export function subsetDifference(run: RunSubset | undefined, request: SubsetRequest | undefined): string | undefined {
  const asked = subsetOf(request);
  const same =
    run === undefined || asked === undefined
      ? run === asked
      : "keysFile" in run || "keysFile" in asked
        ? "keysFile" in run && "keysFile" in asked && run.keysFile === asked.keysFile
        : run.from === asked.from && run.to === asked.to;
  if (same) return undefined;
  const told = (subset: RunSubset | undefined) =>
    subset && "keysFile" in subset ? `the keys of ${subset.keysFile}` : describeSubset(subset);
  return `subset: the run takes ${told(run)}, not ${told(asked)}`;
}
