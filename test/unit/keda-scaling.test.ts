import { type JobScalingSpec, jobsToCreate } from "../../autoscaler/job-scaling";
import {
  decideReplicas,
  EMPTY_HISTORY,
  type ReplicaHistory,
  type ReplicaScalingSpec,
} from "../../autoscaler/replica-scaling";

/** KEDA's and the HPA's arithmetic as the local autoscaler follows it (test/system/autoscaler.test.ts runs it). */

describe("KEDA's ScaledJob: the Jobs created at one poll", () => {
  const spec = (strategy: JobScalingSpec["strategy"], overrides: Partial<JobScalingSpec> = {}): JobScalingSpec => ({
    target: 10,
    activation: 0,
    minReplicas: 0,
    maxReplicas: 5,
    strategy,
    ...overrides,
  });
  const created = (s: JobScalingSpec, queue: number, running = 0, pending = 0) =>
    jobsToCreate(s, { queue, running, pending });

  it("default: ceil(queue / target) up to maxReplicaCount, minus the Jobs running", () => {
    const byDefault = spec({ name: "default" });
    expect(created(byDefault, 45)).toBe(5);
    expect(created(byDefault, 45, 3)).toBe(2);
    expect(created(byDefault, 1000)).toBe(5);
    expect(created(byDefault, 1000, 4, 4)).toBe(1);
    expect(created(byDefault, 25, 3)).toBe(0);
    expect(created(byDefault, 25, 5)).toBe(0);
    expect(created(byDefault, 1)).toBe(1);
    expect(created(byDefault, 0)).toBe(0);
    // never more Jobs than ceil(queue)
    expect(created(spec({ name: "default" }, { target: 0.25 }), 2)).toBe(2);
  });

  it("activation: nothing unless the value is above activationTargetQueryValue", () => {
    const activated = spec({ name: "default" }, { activation: 100 });
    expect(created(activated, 100)).toBe(0);
    expect(created(activated, 101)).toBe(5);
    expect(created(activated, 101, 4)).toBe(1);
  });

  it("minReplicaCount: always active, the minimum first, then maxScale capped at maxReplicaCount, not less the minimum", () => {
    const kept = spec({ name: "default" }, { activation: 100, minReplicas: 2 });
    // the minimum, whatever the value reads
    expect(created(kept, 0)).toBe(2);
    expect(created(kept, 100, 1)).toBe(1);
    expect(created(kept, 100, 2)).toBe(0);
    // above it, the strategy sees the running Jobs less the minimum, against all of maxReplicaCount
    expect(created(kept, 1000, 2)).toBe(5);
    expect(created(kept, 1000, 4)).toBe(3);
    expect(created(kept, 1000, 7)).toBe(0);
  });

  it("accurate: the pending Jobs are deducted, and the running ones only at maxReplicaCount", () => {
    const accurate = spec({ name: "accurate" }, { maxReplicas: 10 });
    expect(created(accurate, 40, 2, 0)).toBe(4);
    expect(created(accurate, 40, 2, 2)).toBe(2);
    expect(created(accurate, 90, 5, 1)).toBe(5);
    expect(created(accurate, 200, 10, 0)).toBe(0);
    expect(created(accurate, 0, 3, 3)).toBe(0);
  });

  it("eager: up to maxReplicaCount less the Jobs running and pending, at most maxScale", () => {
    const eager = spec({ name: "eager" }, { maxReplicas: 10 });
    expect(created(eager, 40, 2, 0)).toBe(4);
    expect(created(eager, 200, 3, 1)).toBe(6);
    expect(created(eager, 200, 10, 0)).toBe(0);
    // scaleTo is maxReplicaCount, not ceil(queue): a fraction of a Job's share still gets it
    expect(created(spec({ name: "eager" }, { target: 0.25 }), 2)).toBe(5);
    expect(created(eager, 0, 3, 3)).toBe(0);
  });

  it("custom: minus customScalingQueueLengthDeduction and a share of the running Jobs (truncated)", () => {
    const custom = spec({ name: "custom", queueLengthDeduction: 1, runningJobPercentage: 0.5 }, { maxReplicas: 10 });
    expect(created(custom, 60, 4)).toBe(3);
    expect(created(custom, 60, 3)).toBe(4);
    expect(created(custom, 15, 6)).toBe(0);
    const plain = spec({ name: "custom", queueLengthDeduction: 0, runningJobPercentage: 0 }, { maxReplicas: 10 });
    expect(created(plain, 1000, 7)).toBe(10);
  });
});

describe("KEDA's ScaledObject and its HPA: the replica count", () => {
  const spec: ReplicaScalingSpec = {
    target: 100,
    activation: 0,
    minReplicas: 0,
    maxReplicas: 10,
    cooldownSeconds: 300,
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: "Max",
      policies: [
        { type: "Pods", value: 4, periodSeconds: 15 },
        { type: "Percent", value: 100, periodSeconds: 15 },
      ],
    },
    scaleDown: {
      stabilizationWindowSeconds: 120,
      selectPolicy: "Max",
      policies: [{ type: "Pods", value: 1, periodSeconds: 60 }],
    },
  };

  /** The replicas decided at each step, each from the history the previous one left. */
  function replay(steps: { now: number; queue: number | undefined; current: number }[], history = EMPTY_HISTORY) {
    const decided: number[] = [];
    let remembered: ReplicaHistory = history;
    for (const seen of steps) {
      const decision = decideReplicas(spec, remembered, seen);
      decided.push(decision.replicas);
      remembered = decision.history;
    }
    return decided;
  }

  it("KEDA activates from zero to one; the HPA then scales up within 4 pods or 100 % per 15 s", () => {
    expect(
      replay([
        { now: 0, queue: 0, current: 0 },
        { now: 10, queue: 950, current: 0 },
        { now: 20, queue: 950, current: 1 },
        { now: 25, queue: 950, current: 5 },
        { now: 36, queue: 950, current: 5 },
      ]),
    ).toEqual([0, 1, 5, 5, 10]);
  });

  it("keeps the count within the 10 % tolerance", () => {
    expect(replay([{ now: 0, queue: 1040, current: 10 }])).toEqual([10]);
    expect(replay([{ now: 0, queue: 1050, current: 5 }])).toEqual([10]);
  });

  it("scales down to the highest count of the stabilization window, one pod a minute", () => {
    expect(
      replay([
        { now: 0, queue: 500, current: 5 },
        { now: 10, queue: 100, current: 5 },
        { now: 121, queue: 100, current: 5 },
        { now: 150, queue: 100, current: 4 },
        { now: 182, queue: 100, current: 4 },
      ]),
    ).toEqual([5, 5, 4, 4, 3]);
  });

  it("keeps one replica while inactive, and scales to zero once cooldownPeriod has passed", () => {
    expect(
      replay([
        { now: 0, queue: 50, current: 0 },
        { now: 100, queue: 0, current: 1 },
        { now: 299, queue: 0, current: 1 },
        { now: 300, queue: 0, current: 1 },
      ]),
    ).toEqual([1, 1, 1, 0]);
  });

  it("changes nothing when the query fails", () => {
    const history = decideReplicas(spec, EMPTY_HISTORY, { now: 0, queue: 950, current: 0 }).history;
    expect(decideReplicas(spec, history, { now: 30, queue: undefined, current: 3 })).toEqual({ replicas: 3, history });
  });
});
