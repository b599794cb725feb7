/** The faults the autoscaler can inject into a run, as its options give them. */

export interface PodKill {
  count: number;
  /** Seconds after the start. */
  at: number;
}

/** Below this share of the first non-zero value (`30%`), or this value (`5000`). */
export type TailThreshold = { share: number } | { value: number };

export interface Faults {
  kills: PodKill[];
  killAtTail: TailThreshold | undefined;
  /** Seconds after the start at which the embedded database restarts... */
  databaseRestarts: number[];
  /** ...after staying down this long. */
  databaseDownSeconds: number;
  /** Seconds each pod waits for its image before its process starts (`--pull-delay`). */
  pullDelaySeconds: number;
  /** The first pods created that never start (ImagePullBackOff, Pending): `--never-start`. */
  neverStart: number;
  /** Pods frozen as on a lost node (`--freeze N@T`): SIGSTOP, evicted after the toleration. */
  freezes: PodKill[];
}

/** `N@T`: N running pods, T seconds after the start (`option`: --kill, --freeze). */
export function parsePodsAt(text: string, option = "--kill"): PodKill {
  const match = /^(\d+)@(\d+(?:\.\d+)?)$/.exec(text);
  if (!match || Number(match[1]) < 1)
    throw new Error(`${option} takes N@T (N pods, T seconds), such as 2@10; got ${text}`);
  return { count: Number(match[1]), at: Number(match[2]) };
}

export function parseTailThreshold(text: string): TailThreshold {
  const share = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (share && Number(share[1]) > 0 && Number(share[1]) < 100) return { share: Number(share[1]) / 100 };
  if (/^\d+(\.\d+)?$/.test(text)) return { value: Number(text) };
  throw new Error(`--kill-at-tail takes a share of the start (30%) or a query value (5000); got ${text}`);
}

/** The value below which the tail starts, given the first non-zero value read. */
export function tailValue(threshold: TailThreshold, startValue: number): number {
  return "share" in threshold ? threshold.share * startValue : threshold.value;
}
