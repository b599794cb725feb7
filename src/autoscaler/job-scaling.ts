/**
 * How many Jobs KEDA's ScaledJob creates at one poll (KEDA 2.x, pkg/scaling/executor/scale_jobs.go
 * and the ScaledJob's scaling strategies), as a pure function of the query's value and the Jobs
 * that exist.
 */

export type JobScalingStrategy =
  | { name: "default" }
  | { name: "accurate" }
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

export function jobsToCreate(spec: JobScalingSpec, seen: JobsSeen): number {
  const { queue, pending } = seen;
  // an inactive trigger creates nothing, not even the minimum
  if (!(queue > spec.activation)) return 0;
  if (seen.running < spec.minReplicas) return spec.minReplicas - seen.running;
  const maxReplicas = spec.maxReplicas - spec.minReplicas;
  const running = seen.running - spec.minReplicas;
  const maxScale = Math.ceil(Math.min(queue / spec.target, maxReplicas));
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
        maxReplicas,
      );
      break;
    case "accurate":
      effective = maxScale + running - pending > maxReplicas ? maxReplicas - running : maxScale - pending;
      break;
  }
  return Math.max(0, Math.min(effective, Math.ceil(queue)));
}
