import { JobController } from "../../autoscaler/job-controller";
import type { ScaledJobWorkload } from "../../autoscaler/manifests";
import type { Container, ContainerExit } from "../../autoscaler/pod-process";
import type { PodRunner } from "../../autoscaler/pods";
import { EXIT_FAILED, EXIT_USAGE } from "../../src/base/exit-status";
import { EXIT_POOL_LOST } from "../../src/worker/pool-watchdog";
import { quietLogger } from "../support/database";

/** A pod's container that ends when the test says, or when stopped (SIGTERM: 143). */
class FakeContainer {
  alive = true;
  terminated = false;
  readonly exited: Promise<ContainerExit>;
  private end!: (exit: ContainerExit) => void;
  constructor() {
    this.exited = new Promise((resolve) => {
      this.end = resolve;
    });
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.alive = false;
    this.end({ code, signal, jobs: 0, lastError: undefined, stopped: false, conditions: [], ran: true, seconds: 0 });
  }
  terminate(): void {
    this.terminated = true;
    this.exit(null, "SIGTERM");
  }
}

/** The Job controller over fake pods, on Jest's fake clock: what it does, not when it gets to it. */
function controller(overrides: Partial<ScaledJobWorkload>) {
  const containers: FakeContainer[] = [];
  const pods = {
    graceSeconds: 45,
    start: async () => {
      const container = new FakeContainer();
      containers.push(container);
      return container as unknown as Container;
    },
  } as unknown as PodRunner;
  const workload = {
    kind: "ScaledJob",
    name: "users-batch",
    scaling: { target: 10, activation: 0, minReplicas: 0, maxReplicas: 1, strategy: { name: "default" } },
    successfulJobsHistoryLimit: 2,
    failedJobsHistoryLimit: 10,
    backoffLimit: 2,
    activeDeadlineSeconds: undefined,
    podFailurePolicy: [
      { action: "Ignore", onExitCodes: { containerName: "worker", operator: "In", values: [EXIT_POOL_LOST] } },
      { action: "FailJob", onExitCodes: { containerName: "worker", operator: "In", values: [EXIT_USAGE] } },
    ],
    ...overrides,
  } as ScaledJobWorkload;
  return { jobs: new JobController(workload, pods, quietLogger), containers };
}

/** Lets the controller's promise callbacks and due timers run. */
async function settle(ms = 0): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
}

describe("the local autoscaler's Job controller", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it("fails a Job at its activeDeadlineSeconds, stopping its pod, and the next poll starts another", async () => {
    const { jobs, containers } = controller({ activeDeadlineSeconds: 3600 });
    await jobs.poll(10);
    expect(containers).toHaveLength(1);
    // a pod that never gets anywhere (a never-started pod holds its Job the same way)
    await settle(3599_000);
    expect(jobs.idle()).toBe(false);
    expect((await jobs.poll(10)).started).toBe(0);
    await settle(1_000);
    expect(containers[0]?.terminated).toBe(true);
    expect(jobs.idle()).toBe(true);
    expect((await jobs.poll(10)).started).toBe(1);
    await jobs.stop();
  });

  it("replaces a pod that lost the database without spending backoffLimit, fails the Job on bad configuration", async () => {
    const { jobs, containers } = controller({});
    await jobs.poll(10);
    for (let i = 0; i < 5; i++) {
      containers[i]?.exit(EXIT_POOL_LOST);
      await settle();
    }
    expect(containers).toHaveLength(6);
    expect(jobs.idle()).toBe(false);
    containers[5]?.exit(EXIT_USAGE);
    await settle();
    expect(jobs.idle()).toBe(true);
    expect(containers).toHaveLength(6);
  });

  it("counts other failures towards backoffLimit, with the Job back-off between pods", async () => {
    const { jobs, containers } = controller({});
    await jobs.poll(10);
    containers[0]?.exit(EXIT_FAILED);
    await settle(9_000);
    expect(containers).toHaveLength(1);
    await settle(1_000);
    expect(containers).toHaveLength(2);
    containers[1]?.exit(null, "SIGKILL");
    await settle(20_000);
    expect(containers).toHaveLength(3);
    containers[2]?.exit(EXIT_FAILED);
    await settle(360_000);
    // backoffLimit 2: the third failure fails the Job
    expect(containers).toHaveLength(3);
    expect(jobs.idle()).toBe(true);
  });
});
