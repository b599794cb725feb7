import type { Logger } from "../src/base/logger";
import { exitStatus, failureAction } from "./job-failure-policy";
import { jobsToCreate } from "./job-scaling";
import type { ScaledJobWorkload } from "./manifests";
import type { Container, ContainerExit } from "./pod-process";
import { backoffSeconds, generateName, type PodRunner } from "./pods";

/** A Job's pods that fail are replaced after 10 s, doubling up to 6 minutes. */
const JOB_BACKOFF_MAX_SECONDS = 360;

interface Job {
  name: string;
  status: "active" | "complete" | "failed" | "deleted";
  failures: number;
  container: Container | undefined;
  retry: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout | undefined;
  finishedAt: number;
}

/**
 * KEDA's ScaledJob and Kubernetes' Job controller: at each poll the Jobs the scaling strategy
 * asks for, each with one pod (parallelism 1); a pod that fails (non-zero exit, killed) is
 * replaced after the Job back-off until `backoffLimit` failures fail the Job, as its
 * podFailurePolicy counts them; a Job still active at its activeDeadlineSeconds has its pod
 * stopped (SIGTERM, then SIGKILL after the grace period) and fails; finished Jobs beyond the
 * history limits are deleted. KEDA never stops a Job's pod: pods end by themselves.
 */
export class JobController {
  private jobs: Job[] = [];

  constructor(
    private readonly workload: ScaledJobWorkload,
    private readonly pods: PodRunner,
    private readonly logger: Logger,
  ) {}

  async poll(queue: number | undefined): Promise<{ started: number; stopped: number }> {
    const active = this.jobs.filter((job) => job.status === "active");
    const seen = {
      running: active.length,
      pending: active.filter((job) => !job.container?.alive).length,
    };
    // a failed query creates nothing: KEDA's trigger is then neither active nor scaled on
    const create = queue === undefined ? 0 : jobsToCreate(this.workload.scaling, { queue, ...seen });
    for (let i = 0; i < create; i++) {
      const job: Job = {
        name: generateName(this.workload.name),
        status: "active",
        failures: 0,
        container: undefined,
        retry: undefined,
        deadline: undefined,
        finishedAt: 0,
      };
      const seconds = this.workload.activeDeadlineSeconds;
      if (seconds !== undefined) job.deadline = setTimeout(() => this.deadlineExceeded(job), seconds * 1000);
      this.jobs.push(job);
      await this.startPod(job);
    }
    this.cleanUp();
    return { started: create, stopped: 0 };
  }

  /** No Job left to finish. */
  idle(): boolean {
    return this.jobs.every((job) => job.status !== "active");
  }

  private async startPod(job: Job): Promise<void> {
    const replacement = job.retry !== undefined;
    job.retry = undefined;
    const container = await this.pods.start(generateName(job.name), replacement);
    job.container = container;
    // deleted, or past its deadline, while its pod was being created
    if (job.status !== "active") container.terminate(this.pods.graceSeconds);
    void container.exited.then((exit) => this.podExited(job, exit));
  }

  private podExited(job: Job, exit: ContainerExit): void {
    if (job.status !== "active") return;
    const status = exitStatus(exit.code, exit.signal);
    if (status === 0) {
      this.finish(job, "complete");
      return;
    }
    const action = failureAction(this.workload.podFailurePolicy, status, exit.conditions);
    if (action === "Ignore") {
      this.logger.info(
        { job: job.name, status, conditions: exit.conditions },
        `job ${job.name}: its pod exited ${status}${exit.conditions.length ? ` (${exit.conditions.join(", ")})` : ""}, ignored by the podFailurePolicy: another pod`,
      );
    }
    if (action === "FailJob") {
      this.logger.info(
        { job: job.name, status },
        `job ${job.name} failed: its pod exited ${status} (podFailurePolicy)`,
      );
      this.finish(job, "failed");
      return;
    }
    if (action === "Count" && ++job.failures > this.workload.backoffLimit) {
      this.logger.info({ job: job.name, failures: job.failures }, `job ${job.name} failed: backoffLimit reached`);
      this.finish(job, "failed");
      return;
    }
    // an ignored failure is replaced at once, as the Job controller does; a counted one after the back-off
    const delay = action === "Ignore" ? 0 : backoffSeconds(job.failures, JOB_BACKOFF_MAX_SECONDS);
    job.retry = setTimeout(() => void this.startPod(job), delay * 1000);
  }

  private deadlineExceeded(job: Job): void {
    if (job.status !== "active") return;
    this.logger.info({ job: job.name }, `job ${job.name} failed: activeDeadlineSeconds reached`);
    clearTimeout(job.retry);
    this.finish(job, "failed");
    job.container?.terminate(this.pods.graceSeconds);
  }

  private finish(job: Job, status: Job["status"]): void {
    clearTimeout(job.deadline);
    job.status = status;
    job.finishedAt = performance.now();
  }

  /** KEDA deletes the oldest finished Jobs beyond successfulJobsHistoryLimit and failedJobsHistoryLimit. */
  private cleanUp(): void {
    const limits = { complete: this.workload.successfulJobsHistoryLimit, failed: this.workload.failedJobsHistoryLimit };
    for (const status of ["complete", "failed"] as const) {
      const finished = this.jobs.filter((job) => job.status === status).sort((a, b) => a.finishedAt - b.finishedAt);
      const deleted = new Set(finished.slice(0, Math.max(0, finished.length - limits[status])));
      this.jobs = this.jobs.filter((job) => !deleted.has(job));
    }
  }

  /** Deletes every Job, as deleting the ScaledJob does: running pods get SIGTERM and their grace period. */
  async stop(): Promise<void> {
    const stopping = this.jobs.map((job) => {
      clearTimeout(job.retry);
      clearTimeout(job.deadline);
      job.status = "deleted";
      job.container?.terminate(this.pods.graceSeconds);
      return job.container?.exited;
    });
    await Promise.all(stopping);
  }
}
