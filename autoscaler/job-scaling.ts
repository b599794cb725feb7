/**
 * How many Jobs KEDA's ScaledJob creates at one poll (KEDA 2.x, pkg/scaling/executor/scale_jobs.go
 * and the ScaledJob's scaling strategies), as a pure function of the query's value and the Jobs
 * that exist.
 */

export type JobScalingStrategy =
  | { name: "default" }
  | { name: "accurate" }
  | { name: "eager" }
  | { name: "custom"; queueLengthDeduction: number; runningJobPercentage: number };

export interface JobScalingSpec {
  /** targetQueryValue: the query's value one Job takes on. */
  target: number;
  /** activationTargetQueryValue: the trigger is active only above it. */
  activation: number;
  minReplicas: number;
  maxReplicas: number;
  strategy: JobScalingStrategy;
}

export interface JobsSeen {
  /** The query's value at this poll. */
  queue: number;
  /** Jobs not finished (neither complete nor failed). */
  running: number;
  /** Of those, Jobs none of whose pods runs yet (or any more). */
  pending: number;
}

/**
 * KEDA's decision step by step: the trigger's value counts only while it is above its
 * activation; a minReplicaCount above 0 keeps the ScaledJob active whatever it reads; maxScale is
 * ceil(min(value / target, maxReplicaCount)), never less the minimum; the strategies see the
 * running Jobs less the minimum; and KEDA creates min(scaleTo, effective) Jobs, scaleTo being
 * ceil(value) (maxReplicaCount for eager).
 */
export function jobsToCreate(spec: JobScalingSpec, seen: JobsSeen): number {
  const { pending } = seen;
  const queue = seen.queue > spec.activation ? seen.queue : 0;
  if (queue === 0 && spec.minReplicas === 0) return 0;
  if (seen.running < spec.minReplicas) return spec.minReplicas - seen.running;
  const maxScale = Math.ceil(Math.min(queue / spec.target, spec.maxReplicas));
  const running = seen.running - spec.minReplicas;
  let scaleTo = Math.ceil(queue);
  let effective: number;
  switch (spec.strategy.name) {
    case "default":
      effective = maxScale - running;
      break;
    case "custom":
      effective = Math.min(
        maxScale -
          spec.strategy.queueLengthDeduction -
          // Go's int64(float64(running) * percentage) truncates
          Math.trunc(running * spec.strategy.runningJobPercentage),
        spec.maxReplicas,
      );
      break;
    case "accurate":
      effective = maxScale + running - pending > spec.maxReplicas ? spec.maxReplicas - running : maxScale - pending;
      break;
    case "eager":
      effective = Math.min(spec.maxReplicas - running - pending, maxScale);
      scaleTo = spec.maxReplicas;
      break;
  }
  return effective > 0 ? Math.min(scaleTo, effective) : 0;
}
