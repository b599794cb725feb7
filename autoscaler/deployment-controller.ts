import type { ScaledObjectWorkload } from "./manifests";
import type { Container } from "./pod-process";
import { backoffSeconds, generateName, type PodRunner } from "./pods";
import { decideReplicas, EMPTY_HISTORY, type ReplicaHistory } from "./replica-scaling";

/** CrashLoopBackOff: a container that exits is restarted after 10 s, doubling up to 5 minutes... */
const RESTART_BACKOFF_MAX_SECONDS = 300;
/** ...and the back-off starts over for a container that ran this long. */
const RESTART_BACKOFF_RESET_SECONDS = 600;

interface ReplicaPod {
  name: string;
  container: Container | undefined;
  startedAt: number;
  /** Restarts since the back-off last started over. */
  crashes: number;
  restart: NodeJS.Timeout | undefined;
  terminating: boolean;
}

export interface ReplicaPoll {
  replicas: number;
  started: number;
  stopped: number;
}

/**
 * KEDA's ScaledObject, its HPA and the Deployment's ReplicaSet: at each poll the replica count
 * decided by `decideReplicas`; a pod whose container exits has it restarted (restartPolicy
 * Always, with CrashLoopBackOff); scale-in deletes pods that are not running first, then the
 * newest, each with SIGTERM and SIGKILL after its grace period.
 */
export class DeploymentController {
  private pods: ReplicaPod[] = [];
  private history: ReplicaHistory = EMPTY_HISTORY;
  /** Pods are named after their ReplicaSet, itself named after the Deployment and a hash. */
  private readonly replicaSet: string;

  constructor(
    private readonly workload: ScaledObjectWorkload,
    private readonly runner: PodRunner,
  ) {
    this.replicaSet = generateName(workload.deployment, 10);
  }

  private replicas(): ReplicaPod[] {
    return this.pods.filter((pod) => !pod.terminating);
  }

  async poll(queue: number | undefined, now: number): Promise<ReplicaPoll> {
    const current = this.replicas();
    const decision = decideReplicas(this.workload.scaling, this.history, { now, queue, current: current.length });
    this.history = decision.history;
    const started = Math.max(0, decision.replicas - current.length);
    for (let i = 0; i < started; i++) {
      const pod: ReplicaPod = {
        name: generateName(this.replicaSet),
        container: undefined,
        startedAt: now,
        crashes: 0,
        restart: undefined,
        terminating: false,
      };
      this.pods.push(pod);
      await this.startContainer(pod);
    }
    const victims = [...current]
      .sort(
        (a, b) =>
          Number(a.container?.alive ?? false) - Number(b.container?.alive ?? false) || b.startedAt - a.startedAt,
      )
      .slice(0, Math.max(0, current.length - decision.replicas));
    for (const pod of victims) this.terminate(pod);
    return { replicas: decision.replicas, started, stopped: victims.length };
  }

  /** No replica and no pod still shutting down. */
  idle(): boolean {
    return this.pods.length === 0;
  }

  private async startContainer(pod: ReplicaPod): Promise<void> {
    const restart = pod.restart !== undefined;
    pod.restart = undefined;
    const container = await this.runner.start(pod.name, restart);
    pod.container = container;
    if (pod.terminating) container.terminate(this.runner.graceSeconds);
    void container.exited.then((exit) => {
      if (pod.terminating) {
        this.pods = this.pods.filter((other) => other !== pod);
        return;
      }
      pod.crashes = exit.seconds >= RESTART_BACKOFF_RESET_SECONDS ? 1 : pod.crashes + 1;
      const delay = backoffSeconds(pod.crashes, RESTART_BACKOFF_MAX_SECONDS);
      pod.restart = setTimeout(() => void this.startContainer(pod), delay * 1000);
    });
  }

  private terminate(pod: ReplicaPod): void {
    pod.terminating = true;
    clearTimeout(pod.restart);
    if (pod.container?.alive) pod.container.terminate(this.runner.graceSeconds);
    else this.pods = this.pods.filter((other) => other !== pod);
  }

  /** Deletes the Deployment: every pod gets SIGTERM and its grace period. */
  async stop(): Promise<void> {
    const exits = this.pods.map((pod) => pod.container?.exited);
    for (const pod of [...this.pods]) this.terminate(pod);
    await Promise.all(exits);
  }
}
