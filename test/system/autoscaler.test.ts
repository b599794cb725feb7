import path from "node:path";
import { exitStatus, failureAction } from "../../autoscaler/job-failure-policy";
import { jobsToCreate } from "../../autoscaler/job-scaling";
import { readWorkload, renderOverlay, type ScaledJobWorkload } from "../../autoscaler/manifests";
import { POD_LOGGING, processSpec } from "../../autoscaler/pod-spec";
import { secretValues } from "../../autoscaler/secrets";
import { EXIT_FAILED, EXIT_USAGE } from "../../src/base/exit-status";
import { EXIT_POOL_LOST } from "../../src/worker/pool-watchdog";
import {
  autoscale,
  LOCAL,
  LONGEST_RUN_S,
  localScaledJob,
  ONE_SECOND_POLLS,
  UP_TO_THE_CAP_MS,
  useAutoscalerDatabase,
} from "../support/autoscaler";
import { insertUsers } from "../support/database";
import { type K8sObject, render } from "../support/manifests";
import { ROOT, seed, WORKER_BIN } from "../support/processes";

const LONG_RUNNING = path.join(ROOT, "k8s/overlays/long-running");

const find = (objects: K8sObject[], kind: string) =>
  objects.find((o) => o.kind === kind) as K8sObject & Record<string, any>;

describe("the manifests, as the local autoscaler reads them", () => {
  it("reads the local overlay's ScaledJob, its trigger's connection and its pod", () => {
    const objects = render("local");
    const scaledJob = find(objects, "ScaledJob");
    const { metadata } = scaledJob.spec.triggers[0];
    const auth = find(objects, "TriggerAuthentication").spec.secretTargetRef[0];
    const pod = scaledJob.spec.jobTargetRef.template.spec;
    const workload = readWorkload(renderOverlay(LOCAL));
    expect(workload).toEqual({
      kind: "ScaledJob",
      name: scaledJob.metadata.name,
      namespace: scaledJob.metadata.namespace,
      pollingIntervalSeconds: scaledJob.spec.pollingInterval,
      trigger: { query: metadata.query, connection: { name: auth.name, key: auth.key } },
      scaling: {
        target: Number(metadata.targetQueryValue),
        activation: Number(metadata.activationTargetQueryValue ?? 0),
        minReplicas: scaledJob.spec.minReplicaCount ?? 0,
        maxReplicas: scaledJob.spec.maxReplicaCount,
        strategy: { name: scaledJob.spec.scalingStrategy.strategy },
      },
      successfulJobsHistoryLimit: scaledJob.spec.successfulJobsHistoryLimit,
      failedJobsHistoryLimit: scaledJob.spec.failedJobsHistoryLimit,
      backoffLimit: scaledJob.spec.jobTargetRef.backoffLimit,
      activeDeadlineSeconds: scaledJob.spec.jobTargetRef.activeDeadlineSeconds,
      podFailurePolicy: scaledJob.spec.jobTargetRef.podFailurePolicy.rules,
      pod: {
        command: [...pod.containers[0].command, ...(pod.containers[0].args ?? [])],
        env: expect.any(Array),
        containerPorts: pod.containers[0].ports.map((port: { containerPort: number }) => port.containerPort),
        terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
        unreachableTolerationSeconds: pod.tolerations.find((t: any) => t.key === "node.kubernetes.io/unreachable")
          .tolerationSeconds,
      },
    });
    // the image's init as the container's PID 1, which processSpec leaves out for a local process
    expect(workload.pod.command).toEqual(["tini", "--", "graphile-worker", "--once"]);
    expect(workload.pod.env).toContainEqual({
      name: "DATABASE_URL",
      from: { secret: { name: "pg-secret", key: "worker-url" } },
    });
    expect(workload.pod.env).toContainEqual({ name: "POD_NAME", from: { field: "metadata.name" } });
  });

  it("reads the long-running overlay's ScaledObject, its HPA behaviour and its Deployment's pod", () => {
    const objects = render("long-running");
    const scaledObject = find(objects, "ScaledObject");
    const deployment = find(objects, "Deployment");
    const { scaleDown } = scaledObject.spec.advanced.horizontalPodAutoscalerConfig.behavior;
    const workload = readWorkload(renderOverlay(LONG_RUNNING));
    expect(workload).toMatchObject({
      kind: "ScaledObject",
      name: scaledObject.metadata.name,
      deployment: deployment.metadata.name,
      pollingIntervalSeconds: scaledObject.spec.pollingInterval,
      scaling: {
        target: Number(scaledObject.spec.triggers[0].metadata.targetQueryValue),
        minReplicas: scaledObject.spec.minReplicaCount,
        maxReplicas: scaledObject.spec.maxReplicaCount,
        cooldownSeconds: scaledObject.spec.cooldownPeriod,
        // what the manifest leaves out is the HPA's default
        scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: "Max" },
        scaleDown: { stabilizationWindowSeconds: scaleDown.stabilizationWindowSeconds, policies: scaleDown.policies },
      },
      pod: {
        command: deployment.spec.template.spec.containers[0].command,
        terminationGracePeriodSeconds: deployment.spec.template.spec.terminationGracePeriodSeconds,
        unreachableTolerationSeconds: deployment.spec.template.spec.tolerations.find(
          (t: any) => t.key === "node.kubernetes.io/unreachable",
        ).tolerationSeconds,
      },
    });
  });

  it("refuses what it cannot run as KEDA would", () => {
    const objects = render("local");
    const scaledJob = structuredClone(find(objects, "ScaledJob"));
    scaledJob.spec.triggers[0].type = "prometheus";
    expect(() => readWorkload(objects.map((o) => (o.kind === "ScaledJob" ? scaledJob : o)))).toThrow(
      /only postgresql triggers are supported/,
    );
    expect(() => readWorkload(objects.filter((o) => o.kind !== "ScaledJob"))).toThrow(
      /exactly one ScaledJob or ScaledObject \(found 0\)/,
    );
  });

  it("refuses a field it does not model rather than dropping it", () => {
    const objects = render("local");
    const withField = (edit: (scaledJob: Record<string, any>) => void) => {
      const scaledJob = structuredClone(find(objects, "ScaledJob"));
      edit(scaledJob);
      return () => readWorkload(objects.map((o) => (o.kind === "ScaledJob" ? scaledJob : o)));
    };
    expect(withField((o) => (o.spec.scalingStrategy.pendingPodConditions = ["Ready"]))).toThrow(
      /scalingStrategy: Unrecognized key: "pendingPodConditions"/,
    );
    expect(withField((o) => (o.spec.jobTargetRef.activeDeadlineSecond = 60))).toThrow(
      /jobTargetRef: Unrecognized key: "activeDeadlineSecond"/,
    );
    expect(withField((o) => (o.spec.jobTargetRef.template.spec.containers[0].startupProbe = {}))).toThrow(
      /containers.0: Unrecognized key: "startupProbe"/,
    );
    const longRunning = render("long-running");
    const scaledObject = structuredClone(find(longRunning, "ScaledObject"));
    scaledObject.spec.fallback = { failureThreshold: 3, replicas: 2 };
    expect(() => readWorkload(longRunning.map((o) => (o.kind === "ScaledObject" ? scaledObject : o)))).toThrow(
      /spec: Unrecognized key: "fallback"/,
    );
  });

  it("applies the Job's podFailurePolicy to a pod's exit status, as the Job controller does", () => {
    const { podFailurePolicy: rules } = readWorkload(renderOverlay(LOCAL)) as ScaledJobWorkload;
    // the database lost: a new pod, and backoffLimit unspent
    expect(failureAction(rules, EXIT_POOL_LOST)).toBe("Ignore");
    // bad configuration: the next pod would fail the same way
    expect(failureAction(rules, EXIT_USAGE)).toBe("FailJob");
    expect(failureAction(rules, EXIT_FAILED)).toBe("Count");
    // stopped (SIGTERM, as graphile-worker re-raises it) or killed (SIGKILL)
    expect(failureAction(rules, exitStatus(null, "SIGTERM"))).toBe("Count");
    expect(exitStatus(null, "SIGTERM")).toBe(143);
    expect(exitStatus(null, "SIGKILL")).toBe(137);
    // evicted (a lost node, a drain): DisruptionTarget, whatever the exit status
    expect(failureAction(rules, exitStatus(null, "SIGKILL"), ["DisruptionTarget"])).toBe("Ignore");
    expect(failureAction([{ action: "Ignore", onExitCodes: { operator: "NotIn", values: [1] } }], 0)).toBe("Count");
  });

  it("gives a pod its command from the project, its Secret keys mapped, its name and a port of its own", async () => {
    const workload = readWorkload(renderOverlay(LOCAL));
    const secrets = secretValues({
      given: ["pg-secret/worker-url=postgres://worker@127.0.0.1/db"],
      databaseUrl: "postgres://default@127.0.0.1/db",
    });
    const spec = await processSpec({
      template: workload.pod,
      podName: "users-batch-abcde-fghij",
      namespace: workload.namespace,
      secrets,
      overrides: { PROCESS_DELAY_MS: "2", CHUNK_SIZE: "500" },
      root: ROOT,
    });
    expect(spec.executable).toBe(WORKER_BIN);
    expect(spec.args).toEqual(["--once"]);
    expect(spec.cwd).toBe(ROOT);
    expect(spec.env).toMatchObject({
      DATABASE_URL: "postgres://worker@127.0.0.1/db",
      POD_NAME: "users-batch-abcde-fghij",
      HOSTNAME: "users-batch-abcde-fghij",
      PROCESS_DELAY_MS: "2",
      CHUNK_SIZE: "500",
      ...POD_LOGGING,
    });
    expect(Number(spec.env.METRICS_PORT)).not.toBe(9464);
    // every key of pg-secret reads DATABASE_URL unless given; other Secrets must be given
    expect(secrets({ name: "pg-secret", key: "monitor-url" })).toBe("postgres://default@127.0.0.1/db");
    expect(() => secrets({ name: "other", key: "url" })).toThrow(/--secret other\/url=/);
  });
});

describe("the local autoscaler against a database", () => {
  const workload = localScaledJob();
  const { db, enqueue, expectCompleted, scaleRunToCompletion } = useAutoscalerDatabase();

  it(
    "runs the local overlay's ScaledJob: pods as KEDA starts them, the run completed, a JSON summary",
    async () => {
      // 60 chunks, as many as 120,000 rows in chunks of 2,000: the same decisions, a fifth of the rows
      const rows = 24_000;
      const summary = await scaleRunToCompletion("scaled", rows, { CHUNK_SIZE: "400" }, [
        "--env",
        "PROCESS_DELAY_MS=2",
        "--until-idle",
        "2",
      ]);

      expect(summary).toMatchObject({
        overlay: "k8s/overlays/local",
        kind: "ScaledJob",
        name: workload.name,
        pollingIntervalSeconds: 1,
        stoppedBecause: "idle",
        podsFailed: 0,
        podsKilled: 0,
        finalQueryValue: 0,
      });
      // the first poll: KEDA's decision on the backlog, several pods at once
      const [first] = summary.timeline;
      expect(first).toMatchObject({ t: 0, running: 0 });
      expect(first.query).toBeGreaterThan(0);
      expect(first.started).toBe(jobsToCreate(workload.scaling, { queue: first.query, running: 0, pending: 0 }));
      expect(summary.podsStarted).toBeGreaterThan(1);
      expect(summary.maxPods).toBeGreaterThan(1);
      expect(summary.maxPods).toBeLessThanOrEqual(workload.scaling.maxReplicas);
      // every pod is in the summary, started by a poll, and those that ran no job are counted
      expect(summary.pods).toHaveLength(summary.podsStarted);
      const startedByPolls = summary.timeline.reduce((sum: number, poll: any) => sum + poll.started + poll.replaced, 0);
      expect(startedByPolls).toBe(summary.podsStarted);
      expect(summary.podsIdle).toBe(summary.pods.filter((pod: any) => pod.jobs === 0).length);
      expect(summary.timeline.slice(-2).map((poll: any) => poll.query)).toEqual([0, 0]);
      // each pod worked under the name KEDA gave it (POD_NAME from metadata.name)
      const { rows: workers } = await db.pool.query(
        "SELECT DISTINCT worker FROM batch_chunks WHERE worker IS NOT NULL",
      );
      const names = new Set(summary.pods.map((pod: any) => pod.pod));
      expect(workers.length).toBeGreaterThan(0);
      for (const { worker } of workers) expect(names).toContain(worker);
    },
    UP_TO_THE_CAP_MS,
  );

  it(
    "finishes a run whose every pod is killed at the tail: the Jobs' next pods take the work up",
    async () => {
      // 60 chunks, each waiting as long on its records as 2,000 rows at 5 ms: the tail lasts polls
      const rows = 24_000;
      const summary = await scaleRunToCompletion("killed", rows, { CHUNK_SIZE: "400" }, [
        "--env",
        "PROCESS_DELAY_MS=25",
        "--env",
        "WORKER_DEAD_AFTER_S=2",
        "--kill-at-tail",
        "50%",
        "--until-idle",
        "3",
      ]);
      expect(summary.stoppedBecause).toBe("idle");
      expect(summary.podsKilled).toBeGreaterThan(0);
      const killedAt = summary.timeline.find((poll: any) => poll.faults.length > 0).t;
      const afterKill = summary.pods.filter((pod: any) => pod.startedAt >= killedAt);
      expect(afterKill.some((pod: any) => pod.jobs > 0)).toBe(true);
      // no stream of pods that find nothing to do while the killed pods' jobs are held
      expect(summary.podsIdle).toBeLessThanOrEqual(workload.scaling.maxReplicas);
    },
    UP_TO_THE_CAP_MS,
  );

  it(
    "counts the rows once when a second run name is enqueued over the same rows",
    async () => {
      const rows = 12_000;
      await insertUsers(db.pool, rows);
      await enqueue("first", rows, { CHUNK_SIZE: "400" });
      // the same rows under another name: refused while the first run is active
      const refused = await seed(["enqueue", "--batch-name", "second"], { DATABASE_URL: db.url, CHUNK_SIZE: "400" });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/"first"/);
      const args = ["k8s/overlays/local", ...ONE_SECOND_POLLS, "--env", "PROCESS_DELAY_MS=10", "--until-idle", "2"];
      const summary = await autoscale([...args, "--duration", LONGEST_RUN_S], { DATABASE_URL: db.url });
      await expectCompleted("first", rows);
      // the trigger counts chunks: the first run's, once
      const chunks = rows / 400;
      expect(Math.max(...summary.timeline.map((poll: any) => poll.query))).toBeLessThanOrEqual(chunks);
      expect(summary.maxPods).toBeLessThanOrEqual(Math.ceil(chunks / workload.scaling.target));

      // once it has ended, the second name finds every row completed: nothing to start, no pod
      const nothing = await seed(["enqueue", "--batch-name", "second"], { DATABASE_URL: db.url, CHUNK_SIZE: "400" });
      expect(nothing.code).toBe(1);
      expect(nothing.stderr).toMatch(/nothing to process/);
      const after = await autoscale([...args, "--duration", "20"], { DATABASE_URL: db.url });
      expect(after).toMatchObject({ stoppedBecause: "idle", podsStarted: 0, finalQueryValue: 0 });
    },
    UP_TO_THE_CAP_MS,
  );
});
