import type { ContainerExit } from "./pod-process";

/** One poll of the autoscaler; times in seconds since its start. */
export interface Poll {
  t: number;
  /** The query's value; null when it failed. */
  query: number | null;
  error?: string;
  /** Pods running when the query was read. */
  running: number;
  /** Pods this poll's scaling decision started. */
  started: number;
  /** Pods started since the previous poll in place of failed ones (a Job's next pod, a container restart). */
  replaced: number;
  /** Pods this poll stopped (a Deployment's scale-in). */
  stopped: number;
  /** The Deployment's replicas after this poll (ScaledObject only). */
  replicas?: number;
  /** Pods that exited since the previous poll, and how many of them had run no job. */
  exited: number;
  idle: number;
  /** Faults injected since the previous poll. */
  faults: string[];
}

/** One run of a pod's container. */
export interface PodRecord {
  pod: string;
  startedAt: number;
  seconds: number;
  /** `status N` or the signal that ended it. */
  exit: string;
  /** Asked to stop by scale-in or at the autoscaler's end. */
  stopped: boolean;
  jobs: number;
  error?: string;
  /** Its process never started (its image never came). */
  neverRan?: true;
  /** DisruptionTarget: evicted, as from a lost node. */
  conditions?: string[];
}

export interface TimelineTotals {
  podsStarted: number;
  /** Pods that exited having run no job. */
  podsIdle: number;
  /** Pods that exited non-zero or by a signal, other than those asked to stop. */
  podsFailed: number;
  podsKilled: number;
  /** The most pods running at once. */
  maxPods: number;
  finalQueryValue: number | null;
  pods: PodRecord[];
  timeline: Poll[];
}

const round = (seconds: number) => Math.round(seconds * 10) / 10;

/** What happened, poll by poll and pod by pod. */
export class Timeline {
  readonly polls: Poll[] = [];
  private readonly pods: PodRecord[] = [];
  private readonly startTimes = new Map<string, number>();
  private readonly startedAt = performance.now();
  private started = 0;
  private live = 0;
  private maxPods = 0;
  private killed = 0;
  private replacedSincePoll = 0;
  private exitedSincePoll = 0;
  private idleSincePoll = 0;
  private faultsSincePoll: string[] = [];

  /** Seconds since the start. */
  now(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  podStarted(pod: string, replacement: boolean): void {
    this.started++;
    if (replacement) this.replacedSincePoll++;
    this.live++;
    this.maxPods = Math.max(this.maxPods, this.live);
    this.startTimes.set(pod, this.now());
  }

  podExited(pod: string, exit: ContainerExit): void {
    this.live--;
    this.exitedSincePoll++;
    if (exit.jobs === 0) this.idleSincePoll++;
    this.pods.push({
      pod,
      startedAt: round(this.startTimes.get(pod) ?? 0),
      seconds: round(exit.seconds),
      exit: exit.signal ?? `status ${exit.code}`,
      stopped: exit.stopped,
      jobs: exit.jobs,
      ...(exit.lastError && exit.code !== 0 ? { error: exit.lastError } : {}),
      ...(exit.ran ? {} : { neverRan: true as const }),
      ...(exit.conditions.length > 0 ? { conditions: exit.conditions } : {}),
    });
  }

  fault(description: string, podsKilled = 0): void {
    this.killed += podsKilled;
    this.faultsSincePoll.push(description);
  }

  record(poll: Omit<Poll, "t" | "replaced" | "exited" | "idle" | "faults">, at: number): Poll {
    const entry: Poll = {
      t: round(at),
      ...poll,
      replaced: this.replacedSincePoll,
      exited: this.exitedSincePoll,
      idle: this.idleSincePoll,
      faults: this.faultsSincePoll,
    };
    this.polls.push(entry);
    this.replacedSincePoll = 0;
    this.exitedSincePoll = 0;
    this.idleSincePoll = 0;
    this.faultsSincePoll = [];
    return entry;
  }

  totals(): TimelineTotals {
    return {
      podsStarted: this.started,
      podsIdle: this.pods.filter((pod) => pod.jobs === 0).length,
      podsFailed: this.pods.filter((pod) => pod.exit !== "status 0" && !pod.stopped).length,
      podsKilled: this.killed,
      maxPods: this.maxPods,
      finalQueryValue: this.polls.at(-1)?.query ?? null,
      pods: this.pods,
      timeline: this.polls,
    };
  }
}
