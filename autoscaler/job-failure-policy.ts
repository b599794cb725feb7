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
 * What the Job controller does with a pod that failed with `status` and has the pod conditions
 * `conditions` (DisruptionTarget: evicted, as from a lost node): the action of the first rule
 * that matches, else Count (one failure towards backoffLimit).
 */
export function failureAction(rules: FailureRule[], status: number, conditions: string[] = []): FailureRule["action"] {
  for (const rule of rules) {
    const codes = rule.onExitCodes;
    // exit status 0 matches no rule, whatever its operator
    if (codes && status !== 0 && codes.values.includes(status) === (codes.operator === "In")) return rule.action;
    const onConditions = rule.onPodConditions ?? [];
    if (onConditions.some((c) => conditions.includes(c.type) && (c.status ?? "True") === "True")) return rule.action;
  }
  return "Count";
}
