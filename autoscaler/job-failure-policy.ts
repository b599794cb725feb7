import os from "node:os";

/** A rule of a Job's podFailurePolicy (Kubernetes batch/v1). */
export interface FailureRule {
  action: "Ignore" | "FailJob" | "Count";
  onExitCodes?: { containerName?: string; operator: "In" | "NotIn"; values: number[] };
  onPodConditions?: { type: string; status?: string }[];
}

/** A container's exit status as the kubelet reports it: a signal's death is 128 plus its number. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
}

/**
 * What the Job controller does with a pod that failed with `status`: the action of the first
 * rule that matches, else Count (one failure towards backoffLimit). Rules on pod conditions
 * never match here: no local pod is disrupted (evicted, preempted) the way a cluster's are.
 */
export function failureAction(rules: FailureRule[], status: number): FailureRule["action"] {
  for (const rule of rules) {
    const codes = rule.onExitCodes;
    if (!codes) continue;
    // exit status 0 matches no rule, whatever its operator
    if (status !== 0 && codes.values.includes(status) === (codes.operator === "In")) return rule.action;
  }
  return "Count";
}
