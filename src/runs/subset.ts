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
