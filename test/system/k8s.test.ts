import fs from "node:fs";
import path from "node:path";
import { EXIT_FAILED, EXIT_USAGE } from "../../src/base/exit-status";
import { poolSizes } from "../../src/config/config";
import { EXIT_POOL_LOST } from "../../src/worker/pool-watchdog";
import {
  EXPECTED_API_VERSIONS,
  type K8sObject,
  OVERLAYS,
  prometheusOperatorSchemaSource,
  readObjects,
  render,
  renderDirectory,
  schemaSource,
  validate,
} from "../support/manifests";
import { ROOT } from "../support/processes";

type Container = {
  name: string;
  image: string;
  command: string[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: object; fieldRef?: { fieldPath: string } } }[];
  securityContext: Record<string, unknown>;
  resources: { requests: object; limits: object };
  livenessProbe?: object;
};
type PodSpec = {
  containers: Container[];
  securityContext: Record<string, unknown>;
  terminationGracePeriodSeconds?: number;
  serviceAccountName: string;
  automountServiceAccountToken: boolean;
};

const find = (objects: K8sObject[], kind: string, name?: string) =>
  objects.find((o) => o.kind === kind && (!name || o.metadata.name === name)) as K8sObject & Record<string, any>;

function podSpecs(objects: K8sObject[]): PodSpec[] {
  return objects.flatMap((o: any) => {
    if (o.kind === "ScaledJob") return [o.spec.jobTargetRef.template.spec];
    if (o.kind === "Deployment" || o.kind === "Job") return [o.spec.template.spec];
    return [];
  });
}

const WORKER_COMMAND = ["graphile-worker"];
/** The image's ENTRYPOINT, which a pod's command replaces: every command names it again. */
const INIT = ["tini", "--"];

/**
 * The connection budget docs/kubernetes.md states: PostgreSQL's default max_connections less its
 * superuser reserve, for the workers at maxReplicaCount and the pods beyond it (a rollout's
 * surge, or a Job's pod replacing one whose sessions are still open), KEDA's trigger, the
 * migration Job, and room for admins, monitoring and psql.
 */
const MAX_CONNECTIONS = 100;
const SUPERUSER_RESERVED = 3;
const KEDA_CONNECTIONS = 2;
const MIGRATION = 1;
const ADMIN_RESERVE = 10;

describe(`Kubernetes manifests, validated against ${schemaSource}`, () => {
  const rendered = Object.fromEntries(OVERLAYS.map((overlay) => [overlay, render(overlay)])) as Record<
    (typeof OVERLAYS)[number],
    K8sObject[]
  >;
  const example = readObjects("k8s/base/secret.example.yaml");
  beforeAll(() => {
    process.stderr.write(`\nKubernetes manifests validated against ${schemaSource}\n`);
  });

  it.each(OVERLAYS)("overlay %s renders objects that match their schemas, unknown fields refused", (overlay) => {
    const objects = rendered[overlay];
    expect(objects.length).toBeGreaterThanOrEqual(5);
    for (const object of objects) {
      expect(object.apiVersion).toBe(EXPECTED_API_VERSIONS[object.kind]);
      expect(validate(object)).toEqual([]);
      // kubectl apply puts an object without one in the current context's namespace: every
      // namespaced object must say it, or its pods, Secret or ScaledObject would land elsewhere
      if (object.kind !== "Namespace")
        expect(`${object.kind}/${object.metadata.name} in ${object.metadata.namespace}`).toBe(
          `${object.kind}/${object.metadata.name} in pg-batch`,
        );
    }
  });

  it.each(OVERLAYS)(
    "overlay %s runs its pods from a tagged image of the release, never the bare local name",
    (overlay) => {
      const images = podSpecs(rendered[overlay]).flatMap((spec: any) =>
        spec.containers.map((c: any) => c.image as string),
      );
      expect(images.length).toBeGreaterThanOrEqual(2);
      for (const image of images) expect(image).toMatch(/^(registry\.example\.com\/pg-batch:0\.1\.0|pg-batch:dev)$/);
      expect(new Set(images).size).toBe(1);
    },
  );

  it("validates the example Secret, which has placeholders only", () => {
    const [secret] = example;
    expect(secret && validate(secret)).toEqual([]);
    for (const value of Object.values((secret as any).stringData as Record<string, string>)) {
      expect(value).toMatch(
        /^postgres:\/\/[A-Z_]+:[A-Z_]+@DATABASE_HOST:5432\/DATABASE\?sslmode=verify-full&sslrootcert=\/etc\/pg-batch\/ca\/ca\.crt$/,
      );
    }
  });

  it("refuses a misspelled field, which the CRD alone would let through", () => {
    const scaledJob = structuredClone(find(rendered.local, "ScaledJob"));
    scaledJob.spec.pollingIntervall = 30;
    scaledJob.spec.jobTargetRef.template.spec.containers[0].imagePullPolicyy = "Always";
    const errors = validate(scaledJob).join("\n");
    expect(errors).toMatch(/pollingIntervall/);
    expect(errors).toMatch(/imagePullPolicyy/);
  });

  it("gives every trigger metadata value as a string", () => {
    for (const overlay of OVERLAYS) {
      for (const object of rendered[overlay].filter((o) => o.kind === "ScaledJob" || o.kind === "ScaledObject")) {
        for (const trigger of (object as any).spec.triggers) {
          for (const value of Object.values(trigger.metadata)) expect(typeof value).toBe("string");
        }
      }
    }
  });

  it("keeps the original ScaledJob's name, polling, replicas and history, with the right strategy", () => {
    const scaledJob = find(rendered.local, "ScaledJob", "users-batch");
    const base = find(rendered.production, "ScaledJob", "users-batch");
    expect(base.spec).toMatchObject({
      pollingInterval: 30,
      successfulJobsHistoryLimit: 2,
      failedJobsHistoryLimit: 10,
      scalingStrategy: { strategy: "default" },
      rollout: { strategy: "gradual" },
      jobTargetRef: { parallelism: 1, completions: 1, template: { spec: { restartPolicy: "Never" } } },
    });
    expect(scaledJob.spec.maxReplicaCount).toBe(5);
    expect(scaledJob.spec.triggers[0]).toMatchObject({ type: "postgresql", authenticationRef: { name: "pgconn" } });
    const auth = find(rendered.local, "TriggerAuthentication", "pgconn");
    expect(auth.spec.secretTargetRef).toEqual([{ parameter: "connection", name: "pg-secret", key: "monitor-url" }]);
    const scaledObject = find(rendered["long-running"], "ScaledObject");
    // the CEL rule of the CRD, which JSON Schema cannot check
    expect(scaledObject.spec.minReplicaCount).toBeLessThanOrEqual(scaledObject.spec.maxReplicaCount);
    expect(scaledObject.spec).toMatchObject({ minReplicaCount: 0, cooldownPeriod: 300 });
    expect(find(rendered["long-running"], "ScaledJob")).toBeUndefined();
  });

  it("fails a Job whose pod never starts, and spends backoffLimit only on failures a new pod may fix", () => {
    for (const overlay of OVERLAYS) {
      const scaledJob = find(rendered[overlay], "ScaledJob");
      if (!scaledJob) continue;
      const job = scaledJob.spec.jobTargetRef;
      const pod = job.template.spec;
      // the deadline stops a working pod too: long after its start-up, with time to hand chunks back
      expect(job.activeDeadlineSeconds).toBeGreaterThanOrEqual(30 * 60);
      expect(job.activeDeadlineSeconds).toBeGreaterThan(10 * pod.terminationGracePeriodSeconds);
      const rules = job.podFailurePolicy.rules;
      expect(rules).toContainEqual({
        action: "Ignore",
        onPodConditions: [{ type: "DisruptionTarget", status: "True" }],
      });
      const onExit = (code: number) =>
        rules.find((rule: any) => rule.onExitCodes?.operator === "In" && rule.onExitCodes.values.includes(code));
      expect(onExit(EXIT_POOL_LOST)).toMatchObject({ action: "Ignore", onExitCodes: { containerName: "worker" } });
      expect(onExit(EXIT_USAGE)).toMatchObject({ action: "FailJob", onExitCodes: { containerName: "worker" } });
      expect(onExit(EXIT_FAILED)).toBeUndefined();
      expect(pod.containers.map((c: Container) => c.name)).toEqual(["worker"]);
      // with a podFailurePolicy, a replacement pod starts only once the one it replaces has ended
      expect(job.podReplacementPolicy ?? "Failed").toBe("Failed");
      expect(scaledJob.spec.failedJobsHistoryLimit).toBeGreaterThanOrEqual(5);
    }
  });

  it.each(OVERLAYS)("overlay %s stays within the connection budget at its most replicas", (overlay) => {
    const scaler = find(rendered[overlay], "ScaledJob") ?? find(rendered[overlay], "ScaledObject");
    const worker = podSpecs(rendered[overlay])
      .flatMap((spec) => spec.containers)
      .find((container) => container.name === "worker");
    const workers = Number(worker?.env.find((variable) => variable.name === "WORKERS")?.value);
    expect(workers).toBeGreaterThan(0);
    // a Deployment's rollout surges by maxSurge; a ScaledJob's Job replaces a pod only once it has
    // ended (podFailurePolicy), but one lost with its node keeps its sessions open a while
    const deployment = find(rendered[overlay], "Deployment");
    const beyond = deployment ? deployment.spec.strategy.rollingUpdate.maxSurge : 1;
    expect(Number.isInteger(beyond)).toBe(true);
    const pods = scaler.spec.maxReplicaCount + beyond;
    const total = pods * poolSizes(workers).perWorker + KEDA_CONNECTIONS + MIGRATION + ADMIN_RESERVE;
    expect(total).toBeLessThanOrEqual(MAX_CONNECTIONS - SUPERUSER_RESERVED);
  });

  it.each(OVERLAYS)("overlay %s has exactly one scaler, and leaves the replica count to it", (overlay) => {
    const scalers = rendered[overlay].filter((o) => o.kind === "ScaledJob" || o.kind === "ScaledObject");
    expect(scalers).toHaveLength(1);
    for (const deployment of rendered[overlay].filter((o) => o.kind === "Deployment")) {
      // a count here would reset KEDA's on every apply
      expect((deployment as any).spec.replicas).toBeUndefined();
    }
  });

  it("builds long-running on production: its objects, image, TLS and labels, a Deployment for the ScaledJob", () => {
    const production = rendered.production;
    const longRunning = rendered["long-running"];
    const names = (objects: K8sObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`);
    const shared = names(production).filter((name) => name !== "ScaledJob/users-batch");
    expect(names(longRunning)).toEqual(expect.arrayContaining(shared));
    for (const name of shared) {
      expect(longRunning.find((o) => `${o.kind}/${o.metadata.name}` === name)).toEqual(
        production.find((o) => `${o.kind}/${o.metadata.name}` === name),
      );
    }
    const jobPod = find(production, "ScaledJob").spec.jobTargetRef.template.spec;
    const deploymentPod = find(longRunning, "Deployment").spec.template.spec;
    const [jobWorker, worker] = [jobPod.containers[0], deploymentPod.containers[0]];
    expect(worker.image).toBe(jobWorker.image);
    // the same environment (TLS included), the same limits and the same scheduling
    const byName = (env: { name: string }[]) => [...env].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName(worker.env)).toEqual(byName(jobWorker.env));
    expect(worker.volumeMounts).toEqual(expect.arrayContaining(jobWorker.volumeMounts));
    expect(worker.resources).toEqual(jobWorker.resources);
    expect(deploymentPod.tolerations).toEqual(jobPod.tolerations);
    for (const object of longRunning) {
      expect(
        `${object.kind}/${object.metadata.name}: ${(object.metadata.labels as any)?.["app.kubernetes.io/name"]}`,
      ).toBe(`${object.kind}/${object.metadata.name}: pg-batch`);
    }
  });

  it.each(OVERLAYS)(
    "overlay %s scales on chunks: a pod's share is its WORKERS, whatever the job's chunk size",
    (overlay) => {
      const scaler = find(rendered[overlay], "ScaledJob") ?? find(rendered[overlay], "ScaledObject");
      const worker = podSpecs(rendered[overlay])
        .flatMap((spec) => spec.containers)
        .find((container) => container.name === "worker");
      const workers = worker?.env.find((variable) => variable.name === "WORKERS")?.value;
      expect(scaler.spec.triggers[0].metadata).toMatchObject({
        query: "SELECT chunks_left FROM batch_backlog",
        targetQueryValue: workers,
      });
    },
  );

  it("runs the documented worker command, non-root and read-only, with secrets only from the Secret", () => {
    for (const overlay of OVERLAYS) {
      for (const spec of podSpecs(rendered[overlay])) {
        expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
        expect(spec.automountServiceAccountToken).toBe(false);
        expect(spec.serviceAccountName).toBe("pg-batch");
        for (const container of spec.containers) {
          expect(container.securityContext).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          });
          expect(container.resources.requests).toBeDefined();
          expect(container.resources.limits).toBeDefined();
          const url = container.env.find((e) => e.name === "DATABASE_URL");
          expect(url?.value).toBeUndefined();
          expect(url?.valueFrom?.secretKeyRef).toMatchObject({ name: "pg-secret" });
          for (const variable of container.env) expect(variable.value ?? "").not.toMatch(/postgres(ql)?:\/\//);
        }
      }
      const workers = podSpecs(rendered[overlay]).filter((spec) => spec.containers[0]?.name === "worker");
      expect(workers).toHaveLength(1);
      const [worker] = workers as [PodSpec];
      const container = worker.containers[0] as Container;
      expect(container.command.slice(0, INIT.length + WORKER_COMMAND.length)).toEqual([...INIT, ...WORKER_COMMAND]);
      expect(container.env.find((e) => e.name === "POD_NAME")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
      // a standby to throttle on is optional: pods start whether the Secret has the key or not
      expect(container.env.find((e) => e.name === "REPLICA_DATABASE_URL")?.valueFrom?.secretKeyRef).toEqual({
        name: "pg-secret",
        key: "replica-url",
        optional: true,
      });
      expect(container.livenessProbe).toBeDefined();
      const grace = Number(container.env.find((e) => e.name === "SHUTDOWN_GRACE_S")?.value);
      expect(worker.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(grace + 10);
    }
    const jobCommand = (find(rendered.local, "ScaledJob") as any).spec.jobTargetRef.template.spec.containers[0].command;
    expect(jobCommand).toEqual([...INIT, ...WORKER_COMMAND, "--once"]);
    const migrate = find(rendered.local, "Job") as any;
    expect(migrate.spec.template.spec.containers[0].command).toEqual([
      ...INIT,
      "node",
      "dist/seed/cli.js",
      "schema",
      "--roles",
    ]);
  });

  it("names each release's migration Job after its image's tag, so that applying a release creates it", () => {
    for (const overlay of OVERLAYS) {
      const jobs = rendered[overlay].filter((o) => o.kind === "Job") as any[];
      expect(jobs).toHaveLength(1);
      const tag = jobs[0].spec.template.spec.containers[0].image.split(":").at(-1);
      expect({ overlay, name: jobs[0].metadata.name }).toEqual({ overlay, name: `pg-batch-migrate-${tag}` });
      // a Job's name becomes its pods' job-name label: 63 characters at most
      expect(jobs[0].metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/);
    }
  });

  it("lets pods reach only PostgreSQL and DNS, and the Kubernetes API not at all", () => {
    const policy = find(rendered.production, "NetworkPolicy") as any;
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    const ports = policy.spec.egress.flatMap((rule: any) => rule.ports.map((p: any) => `${p.protocol}/${p.port}`));
    // PostgreSQL, PgBouncer, DNS, and OpenShift's DNS pods' own port
    expect(ports.sort()).toEqual(["TCP/53", "TCP/5353", "TCP/5432", "TCP/6432", "UDP/53", "UDP/5353"]);
    // DNS to the cluster's DNS pods only, never to anywhere
    const dns = policy.spec.egress.filter((rule: any) => rule.ports.some((p: any) => [53, 5353].includes(p.port)));
    expect(dns.map((rule: any) => rule.to)).toEqual([
      [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
          podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
        },
      ],
      [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "openshift-dns" } },
          podSelector: { matchLabels: { "dns.operator.openshift.io/daemonset-dns": "default" } },
        },
      ],
    ]);
    // the metrics port, from the monitoring namespace only
    expect(policy.spec.ingress).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
        ports: [{ protocol: "TCP", port: 9464 }],
      },
    ]);
    expect(find(rendered.production, "ServiceAccount").automountServiceAccountToken).toBe(false);
    expect(rendered.production.some((o) => o.kind.includes("Role"))).toBe(false);
  });

  it("differs per overlay where it should: local image and secrets, production image and TLS", () => {
    const image = (objects: K8sObject[]) => podSpecs(objects)[0]?.containers[0]?.image;
    expect(image(rendered.local)).toBe("pg-batch:dev");
    expect(image(rendered.production)).toMatch(/^registry\.example\.com\/pg-batch(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
    expect(find(rendered.local, "Secret", "pg-secret")).toBeDefined();
    // what is created out of band, kubectl delete -k must leave: the Secret, and its namespace
    for (const overlay of ["production", "long-running"] as const) {
      expect(find(rendered[overlay], "Secret")).toBeUndefined();
      expect(find(rendered[overlay], "Namespace")).toBeUndefined();
    }
    // every pod of production and long-running verifies the database against the CA it mounts
    for (const spec of [...podSpecs(rendered.production), ...podSpecs(rendered["long-running"])]) {
      const container = spec.containers[0] as any;
      expect(container.env).toContainEqual({ name: "PGSSLMODE", value: "verify-full" });
      const rootCert = container.env.find((v: any) => v.name === "PGSSLROOTCERT")?.value as string;
      const mount = container.volumeMounts.find((m: any) => rootCert.startsWith(`${m.mountPath}/`));
      expect(mount?.readOnly).toBe(true);
      const volume = (spec as any).volumes.find((v: any) => v.name === mount.name);
      expect(volume.configMap).toEqual({ name: "pg-batch-ca" });
      expect(rootCert.slice(mount.mountPath.length + 1)).toBe("ca.crt");
    }
  });

  it("supports every kubectl command the README and docs/ show", () => {
    const docs = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).map((name) => `docs/${name}`)]
      .filter((file) => file.endsWith(".md"))
      .map((file) => fs.readFileSync(path.join(ROOT, file), "utf8"))
      .join("\n");
    const commands = [...docs.matchAll(/```sh\n([\s\S]*?)```/g)]
      .flatMap((block) => (block[1] as string).replace(/\\\n\s*/g, " ").split("\n"))
      .map((line) => line.trim())
      .filter((line) => line.startsWith("kubectl"));
    expect(commands.length).toBeGreaterThanOrEqual(6);
    const everything = OVERLAYS.flatMap((overlay) => rendered[overlay]);
    const podLabels = everything.flatMap((o: any) => {
      const template = o.kind === "ScaledJob" ? o.spec.jobTargetRef.template : o.spec?.template;
      return template ? Object.entries(template.metadata?.labels ?? {}).map(([k, v]) => `${k}=${v}`) : [];
    });
    for (const command of commands) {
      for (const [, overlay] of command.matchAll(/-k k8s\/overlays\/([\w-]+)/g)) {
        expect(OVERLAYS).toContain(overlay);
      }
      for (const [, namespace] of command.matchAll(/-n (\S+)/g)) {
        // the database's CA goes to KEDA's namespace too, for its operator (docs/kubernetes.md, "TLS to the database")
        expect(
          namespace === "pg-batch" || (namespace === "keda" && /create configmap pg-batch-ca /.test(command)),
        ).toBe(true);
      }
      for (const [, name] of command.matchAll(/create configmap (\S+)/g)) {
        const mounted = everything.flatMap((o: any) =>
          podSpecs([o]).flatMap((spec: any) => (spec.volumes ?? []).map((v: any) => v.configMap?.name)),
        );
        expect(mounted).toContain(name);
      }
      for (const [, kind, name] of command.matchAll(/(scaledjob|scaledobject) (\S+)/g)) {
        expect(everything.some((o) => o.kind.toLowerCase() === kind && o.metadata.name === name)).toBe(true);
      }
      for (const [, name] of command.matchAll(/job\/(\S+)/g)) {
        expect(everything.some((o) => o.kind === "Job" && o.metadata.name === name)).toBe(true);
      }
      for (const [, selector] of command.matchAll(/-l (\S+)/g)) expect(podLabels).toContain(selector);
      for (const [, secret] of command.matchAll(/create secret generic (\S+)/g)) {
        const keys = [...command.matchAll(/--from-literal=([\w-]+)=/g)].map((m) => m[1]).sort();
        expect(secret).toBe("pg-secret");
        expect(keys).toEqual(Object.keys((example[0] as any).stringData).sort());
      }
    }
  });
});

describe(`k8s/monitoring, the Prometheus Operator's objects validated against ${prometheusOperatorSchemaSource}`, () => {
  const objects = renderDirectory(path.join(ROOT, "k8s/monitoring"));
  beforeAll(() => {
    process.stderr.write(`\nk8s/monitoring validated against ${prometheusOperatorSchemaSource}\n`);
  });

  it("renders a PodMonitor, a PrometheusRule and the Grafana dashboard's ConfigMap that match their schemas", () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PodMonitor", "PrometheusRule"]);
    for (const object of objects) {
      expect(object.apiVersion).toBe(EXPECTED_API_VERSIONS[object.kind]);
      expect(validate(object)).toEqual([]);
      expect(object.metadata.namespace).toBe("pg-batch");
    }
  });

  it("refuses a misspelled field of either", () => {
    const monitor = structuredClone(objects.find((o) => o.kind === "PodMonitor")) as any;
    monitor.spec.podMetricsEndpoints[0].intervall = "30s";
    expect(validate(monitor).join("\n")).toMatch(/intervall/);
    const rule = structuredClone(objects.find((o) => o.kind === "PrometheusRule")) as any;
    rule.spec.groups[0].rules[0].fore = "5m";
    expect(validate(rule).join("\n")).toMatch(/fore/);
  });
});
