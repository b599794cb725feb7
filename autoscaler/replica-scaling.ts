/**
 * The replica count of a Deployment scaled by a KEDA ScaledObject, as a pure function of the
 * query's value, the replicas there are and what was decided before. KEDA itself moves between 0
 * and 1 (activation, and back to zero once `cooldownPeriod` has passed without activity); in
 * between, the HPA it creates decides (Kubernetes autoscaling/v2, AverageValue target):
 *
 * - desired = ceil(value / target), unless value / (target * current) is within the HPA's 10 %
 *   tolerance of 1, when it stays as it is;
 * - stabilization: scaling up takes the lowest desired count of the scale-up window, scaling
 *   down the highest of the scale-down window (`stabilizationWindowSeconds`);
 * - rate limits: each direction's Pods and Percent policies over their `periodSeconds`, chosen
 *   by `selectPolicy` (Max, Min, Disabled);
 * - clamped to [max(minReplicaCount, 1) .. maxReplicaCount].
 *
 * Not modelled: the HPA's own sync period (it decides at every poll here), fallback replicas,
 * idleReplicaCount, and readiness (a started pod counts at once).
 */

export interface ScalingPolicy {
  type: "Pods" | "Percent";
  value: number;
  periodSeconds: number;
}

export interface ScalingRules {
  stabilizationWindowSeconds: number;
  selectPolicy: "Max" | "Min" | "Disabled";
  policies: ScalingPolicy[];
}

export interface ReplicaScalingSpec {
  target: number;
  activation: number;
  minReplicas: number;
  maxReplicas: number;
  cooldownSeconds: number;
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
}

/** What KEDA and the HPA remember between decisions; times in seconds. */
export interface ReplicaHistory {
  /** The HPA's desired counts before stabilization. */
  recommendations: { at: number; replicas: number }[];
  /** The HPA's changes of the replica count, for its rate limits. */
  changes: { at: number; change: number }[];
  lastActiveAt: number | undefined;
}

export const EMPTY_HISTORY: ReplicaHistory = { recommendations: [], changes: [], lastActiveAt: undefined };

export interface ReplicasSeen {
  now: number;
  /** The query's value, or undefined when it failed (nothing changes then). */
  queue: number | undefined;
  current: number;
}

export interface ReplicaDecision {
  replicas: number;
  history: ReplicaHistory;
}

/** The HPA's default tolerance: no change while the ratio to the target is within 10 % of 1. */
const TOLERANCE = 0.1;

/** Replicas changed within the last `periodSeconds` (positive: added). */
function changedWithin(history: ReplicaHistory, now: number, periodSeconds: number): number {
  return history.changes.filter((c) => c.at > now - periodSeconds).reduce((sum, c) => sum + c.change, 0);
}

/** The most replicas the scale-up policies allow now. */
function scaleUpLimit(rules: ScalingRules, history: ReplicaHistory, now: number, current: number): number {
  if (rules.selectPolicy === "Disabled") return current;
  const proposals = rules.policies.map((policy) => {
    const periodStart = current - changedWithin(history, now, policy.periodSeconds);
    return policy.type === "Pods" ? periodStart + policy.value : Math.ceil(periodStart * (1 + policy.value / 100));
  });
  return rules.selectPolicy === "Min" ? Math.min(...proposals) : Math.max(...proposals);
}

/** The fewest replicas the scale-down policies allow now. */
function scaleDownLimit(rules: ScalingRules, history: ReplicaHistory, now: number, current: number): number {
  if (rules.selectPolicy === "Disabled") return current;
  const proposals = rules.policies.map((policy) => {
    const periodStart = current - changedWithin(history, now, policy.periodSeconds);
    return policy.type === "Pods" ? periodStart - policy.value : Math.trunc(periodStart * (1 - policy.value / 100));
  });
  // Max picks the policy allowing the biggest change: here the lowest count
  return rules.selectPolicy === "Min" ? Math.max(...proposals) : Math.min(...proposals);
}

function hpaReplicas(spec: ReplicaScalingSpec, history: ReplicaHistory, now: number, queue: number, current: number) {
  const ratio = queue / (spec.target * current);
  const recommended = Math.abs(ratio - 1) <= TOLERANCE ? current : Math.ceil(queue / spec.target);

  // the HPA starts its scale-down window with the count it found
  const earlier =
    history.recommendations.length === 0 && spec.scaleDown.stabilizationWindowSeconds > 0
      ? [{ at: now, replicas: current }]
      : history.recommendations;
  let lowestUp = recommended;
  let highestDown = recommended;
  for (const rec of earlier) {
    if (rec.at > now - spec.scaleUp.stabilizationWindowSeconds) lowestUp = Math.min(lowestUp, rec.replicas);
    if (rec.at > now - spec.scaleDown.stabilizationWindowSeconds) highestDown = Math.max(highestDown, rec.replicas);
  }
  const stabilized = Math.min(Math.max(current, lowestUp), highestDown);

  let replicas = stabilized;
  if (stabilized > current) {
    const limit = Math.max(scaleUpLimit(spec.scaleUp, history, now, current), current);
    replicas = Math.min(stabilized, spec.maxReplicas, limit);
  } else if (stabilized < current) {
    const limit = Math.min(scaleDownLimit(spec.scaleDown, history, now, current), current);
    replicas = Math.max(stabilized, Math.max(spec.minReplicas, 1), limit);
  }
  return { replicas, recommendation: { at: now, replicas: recommended }, earlier };
}

export function decideReplicas(spec: ReplicaScalingSpec, history: ReplicaHistory, seen: ReplicasSeen): ReplicaDecision {
  const { now, queue, current } = seen;
  if (queue === undefined) return { replicas: current, history };
  const active = queue > spec.activation;
  const lastActiveAt = active ? now : history.lastActiveAt;
  // what the windows and rate limits can still look at
  const keep = Math.max(
    spec.scaleUp.stabilizationWindowSeconds,
    spec.scaleDown.stabilizationWindowSeconds,
    ...[...spec.scaleUp.policies, ...spec.scaleDown.policies].map((p) => p.periodSeconds),
  );
  const recent = <T extends { at: number }>(items: T[]) => items.filter((item) => item.at > now - keep);

  if (current === 0) {
    // KEDA, not the HPA, takes a Deployment off zero
    const replicas = active ? Math.max(spec.minReplicas, 1) : spec.minReplicas;
    return { replicas, history: { ...history, lastActiveAt } };
  }
  if (!active && spec.minReplicas === 0 && (lastActiveAt === undefined || now - lastActiveAt >= spec.cooldownSeconds)) {
    return { replicas: 0, history: { ...history, lastActiveAt } };
  }
  const hpa = hpaReplicas(spec, history, now, queue, current);
  const changes =
    hpa.replicas === current ? history.changes : [...history.changes, { at: now, change: hpa.replicas - current }];
  return {
    replicas: hpa.replicas,
    history: {
      recommendations: recent([...hpa.earlier, hpa.recommendation]),
      changes: recent(changes),
      lastActiveAt,
    },
  };
}
