import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import type { FailureRule } from "./job-failure-policy";
import type { JobScalingSpec } from "./job-scaling";
import type { ReplicaScalingSpec, ScalingRules } from "./replica-scaling";

/**
 * The rendered manifests of an overlay read into what the local autoscaler needs: the KEDA
 * ScaledJob (or ScaledObject and its Deployment), its postgresql trigger and the connection its
 * TriggerAuthentication names, and the worker pod's template. Defaults are KEDA's and
 * Kubernetes' own; what the autoscaler cannot do as KEDA would is refused, not ignored.
 */

/** A key of a Secret, as secretKeyRef and secretTargetRef name it. */
export interface SecretKey {
  name: string;
  key: string;
  /** A key the Secret may lack (secretKeyRef's `optional`): its variable is then left unset. */
  optional?: boolean;
}

export type EnvSource = { value: string } | { secret: SecretKey } | { field: string };

export interface PodTemplate {
  /** The container's command and args, in that order. */
  command: string[];
  env: { name: string; from: EnvSource }[];
  containerPorts: number[];
  terminationGracePeriodSeconds: number;
  /**
   * How long a pod stays bound to a node that stopped answering (the NoExecute toleration of
   * node.kubernetes.io/unreachable; Kubernetes adds 300 s where the pod states none): then it is
   * evicted, with the condition DisruptionTarget.
   */
  unreachableTolerationSeconds: number;
}

export interface Trigger {
  query: string;
  connection: SecretKey;
}

interface Scaled {
  name: string;
  namespace: string;
  pollingIntervalSeconds: number;
  trigger: Trigger;
  pod: PodTemplate;
}

export interface ScaledJobWorkload extends Scaled {
  kind: "ScaledJob";
  scaling: JobScalingSpec;
  successfulJobsHistoryLimit: number;
  failedJobsHistoryLimit: number;
  backoffLimit: number;
  /** The Job's activeDeadlineSeconds: past it, its pod is stopped and the Job failed. */
  activeDeadlineSeconds: number | undefined;
  podFailurePolicy: FailureRule[];
}

export interface ScaledObjectWorkload extends Scaled {
  kind: "ScaledObject";
  deployment: string;
  scaling: ReplicaScalingSpec;
}

export type Workload = ScaledJobWorkload | ScaledObjectWorkload;

export class ManifestError extends Error {
  override name = "ManifestError";
}

/** Kubernetes writes numbers as strings here and there (targetQueryValue is always a string). */
const numeric = z.union([
  z.number(),
  z
    .string()
    .regex(/^-?\d+(\.\d+)?$/)
    .transform(Number),
]);

const envVar = z.strictObject({
  name: z.string(),
  value: z.string().optional(),
  valueFrom: z
    .strictObject({
      secretKeyRef: z.strictObject({ name: z.string(), key: z.string(), optional: z.boolean().optional() }).optional(),
      fieldRef: z.strictObject({ fieldPath: z.string() }).optional(),
    })
    .optional(),
});

/**
 * What changes nothing for a local process (image, security, resources, volumes, scheduling,
 * probes): read and left aside. Any field not named in the schemas below is refused.
 */
const notModelled = z.unknown().optional();

const container = z.strictObject({
  name: z.string(),
  image: notModelled,
  imagePullPolicy: notModelled,
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).default([]),
  env: z.array(envVar).default([]),
  envFrom: z.undefined({ error: "envFrom is not supported by the local autoscaler" }).optional(),
  ports: z
    .array(z.strictObject({ name: z.string().optional(), containerPort: z.number(), protocol: z.string().optional() }))
    .default([]),
  livenessProbe: notModelled,
  readinessProbe: notModelled,
  resources: notModelled,
  securityContext: notModelled,
  volumeMounts: notModelled,
});

const podSpec = z.strictObject({
  terminationGracePeriodSeconds: z.number().default(30),
  containers: z.array(container).min(1),
  restartPolicy: notModelled,
  serviceAccountName: notModelled,
  automountServiceAccountToken: notModelled,
  securityContext: notModelled,
  tolerations: z
    .array(
      z.strictObject({
        key: z.string().optional(),
        operator: z.string().optional(),
        value: z.string().optional(),
        effect: z.string().optional(),
        tolerationSeconds: z.number().optional(),
      }),
    )
    .default([]),
  volumes: notModelled,
});

const podTemplate = z.strictObject({ metadata: notModelled, spec: podSpec });

const trigger = z.object({
  type: z.literal("postgresql", { error: "only postgresql triggers are supported" }),
  authenticationRef: z.object({ name: z.string() }, { error: "the trigger needs an authenticationRef" }),
  metadata: z.object({
    query: z.string(),
    targetQueryValue: numeric,
    activationTargetQueryValue: numeric.default(0),
  }),
});

// AverageValue: the target is per replica (a ScaledJob's is always)
const triggers = z
  .array(
    trigger.extend({ metricType: z.literal("AverageValue", { error: "only AverageValue is supported" }).optional() }),
  )
  .length(1, "exactly one trigger is supported");

const metadata = z.object({ name: z.string(), namespace: z.string().default("default") });

/** A Job's podFailurePolicy: its rules on exit codes are applied; no local pod gets a disruption condition. */
const podFailurePolicy = z.strictObject({
  rules: z.array(
    z.strictObject({
      action: z.enum(["Ignore", "FailJob", "Count"]),
      onExitCodes: z
        .strictObject({
          containerName: z.string().optional(),
          operator: z.enum(["In", "NotIn"]),
          values: z.array(z.number()),
        })
        .optional(),
      onPodConditions: z.array(z.strictObject({ type: z.string(), status: z.string().optional() })).optional(),
    }),
  ),
});

const scaledJob = z.object({
  metadata,
  spec: z.strictObject({
    pollingInterval: z.number().default(30),
    minReplicaCount: z.number().default(0),
    maxReplicaCount: z.number().default(100),
    successfulJobsHistoryLimit: z.number().default(100),
    failedJobsHistoryLimit: z.number().default(100),
    scalingStrategy: z
      .strictObject({
        strategy: z.enum(["default", "accurate", "eager", "custom"]).default("default"),
        customScalingQueueLengthDeduction: z.number().default(0),
        customScalingRunningJobPercentage: numeric.default(0),
      })
      .default({ strategy: "default", customScalingQueueLengthDeduction: 0, customScalingRunningJobPercentage: 0 }),
    // a new spec's effect on running Jobs: the local autoscaler runs one spec
    rollout: notModelled,
    jobTargetRef: z.strictObject({
      parallelism: z.literal(1, { error: "only parallelism 1 is supported" }).default(1),
      completions: z.literal(1, { error: "only completions 1 is supported" }).default(1),
      activeDeadlineSeconds: z.number().positive().optional(),
      backoffLimit: z.number().default(6),
      podFailurePolicy: podFailurePolicy.optional(),
      template: podTemplate,
    }),
    triggers,
  }),
});

const scalingPolicy = z.object({
  type: z.enum(["Pods", "Percent"]),
  value: z.number(),
  periodSeconds: z.number(),
});

const scalingRules = z
  .object({
    stabilizationWindowSeconds: z.number().optional(),
    selectPolicy: z.enum(["Max", "Min", "Disabled"]).default("Max"),
    policies: z.array(scalingPolicy).optional(),
  })
  .optional();

const scaledObject = z.object({
  metadata,
  spec: z.strictObject({
    scaleTargetRef: z.object({
      kind: z.literal("Deployment", { error: "only a Deployment target is supported" }).default("Deployment"),
      name: z.string(),
    }),
    pollingInterval: z.number().default(30),
    cooldownPeriod: z.number().default(300),
    minReplicaCount: z.number().default(0),
    maxReplicaCount: z.number().default(100),
    advanced: z
      .object({
        horizontalPodAutoscalerConfig: z
          .object({ behavior: z.object({ scaleUp: scalingRules, scaleDown: scalingRules }).optional() })
          .optional(),
      })
      .optional(),
    triggers,
  }),
});

const deployment = z.object({
  metadata: z.object({ name: z.string() }),
  spec: z.object({ template: podTemplate }),
});

const triggerAuthentication = z.object({
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    secretTargetRef: z.array(z.object({ parameter: z.string(), name: z.string(), key: z.string() })),
  }),
});

/** The HPA's defaults (Kubernetes autoscaling/v2), where the ScaledObject's behavior says nothing. */
const DEFAULT_SCALE_UP: ScalingRules = {
  stabilizationWindowSeconds: 0,
  selectPolicy: "Max",
  policies: [
    { type: "Pods", value: 4, periodSeconds: 15 },
    { type: "Percent", value: 100, periodSeconds: 15 },
  ],
};
const DEFAULT_SCALE_DOWN: ScalingRules = {
  stabilizationWindowSeconds: 300,
  selectPolicy: "Max",
  policies: [{ type: "Percent", value: 100, periodSeconds: 15 }],
};

type K8sObject = { kind?: string; metadata?: { name?: string } };

/** `kubectl kustomize` of an overlay directory, as plain objects. */
export function renderOverlay(dir: string): K8sObject[] {
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? "").trim();
    throw new ManifestError(`kubectl kustomize ${dir} failed: ${stderr || (error as Error).message}`);
  }
  return parseAllDocuments(text)
    .map((doc) => doc.toJSON() as K8sObject | null)
    .filter((object): object is K8sObject => object !== null);
}

function parse<T>(schema: z.ZodType<T>, object: K8sObject): T {
  const parsed = schema.safeParse(object);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
  throw new ManifestError(`${object.kind}/${object.metadata?.name}: ${problems.join("; ")}`);
}

function readPod(spec: z.infer<typeof podSpec>, owner: string): PodTemplate {
  if (spec.containers.length > 1) throw new ManifestError(`${owner}: only pods of one container are supported`);
  const [container] = spec.containers as [z.infer<typeof podSpec>["containers"][number]];
  if (!container.command)
    throw new ManifestError(`${owner}: the container needs a command (the image's is not known here)`);
  const env = container.env.map(({ name, value, valueFrom }) => {
    if (value !== undefined) return { name, from: { value } };
    if (valueFrom?.secretKeyRef) return { name, from: { secret: valueFrom.secretKeyRef } };
    if (valueFrom?.fieldRef) return { name, from: { field: valueFrom.fieldRef.fieldPath } };
    throw new ManifestError(`${owner}: env ${name} is neither a value, a secretKeyRef nor a fieldRef`);
  });
  return {
    command: [...container.command, ...container.args],
    env,
    containerPorts: container.ports.map((port) => port.containerPort),
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
    unreachableTolerationSeconds:
      spec.tolerations.find((t) => t.key === "node.kubernetes.io/unreachable" && t.effect === "NoExecute")
        ?.tolerationSeconds ?? 300,
  };
}

function readTrigger(objects: K8sObject[], spec: z.infer<typeof trigger>, owner: string): Trigger {
  const authName = spec.authenticationRef.name;
  const found = objects.find((o) => o.kind === "TriggerAuthentication" && o.metadata?.name === authName);
  if (!found) throw new ManifestError(`${owner}: its TriggerAuthentication ${authName} is not in the manifests`);
  const auth = parse(triggerAuthentication, found);
  const connection = auth.spec.secretTargetRef.find((ref) => ref.parameter === "connection");
  if (!connection) throw new ManifestError(`TriggerAuthentication/${authName}: no secretTargetRef for "connection"`);
  return { query: spec.metadata.query, connection: { name: connection.name, key: connection.key } };
}

/** What a ScaledJob and a ScaledObject share: the trigger's target and activation, the replica range. */
function replicaBounds(first: z.infer<typeof trigger>, spec: { minReplicaCount: number; maxReplicaCount: number }) {
  return {
    target: first.metadata.targetQueryValue,
    activation: first.metadata.activationTargetQueryValue,
    minReplicas: spec.minReplicaCount,
    maxReplicas: spec.maxReplicaCount,
  };
}

function readRules(rules: z.infer<typeof scalingRules>, defaults: ScalingRules): ScalingRules {
  return {
    stabilizationWindowSeconds: rules?.stabilizationWindowSeconds ?? defaults.stabilizationWindowSeconds,
    selectPolicy: rules?.selectPolicy ?? defaults.selectPolicy,
    policies: rules?.policies ?? defaults.policies,
  };
}

/** The one scaled workload of the manifests: a ScaledJob, or a ScaledObject and its Deployment. */
export function readWorkload(objects: K8sObject[]): Workload {
  const scaled = objects.filter((o) => o.kind === "ScaledJob" || o.kind === "ScaledObject");
  if (scaled.length !== 1) {
    throw new ManifestError(`the manifests must hold exactly one ScaledJob or ScaledObject (found ${scaled.length})`);
  }
  const [object] = scaled as [K8sObject];
  if (object.kind === "ScaledJob") {
    const { metadata, spec } = parse(scaledJob, object);
    const owner = `ScaledJob/${metadata.name}`;
    const first = spec.triggers[0] as (typeof spec.triggers)[number];
    const strategy = spec.scalingStrategy;
    return {
      kind: "ScaledJob",
      name: metadata.name,
      namespace: metadata.namespace,
      pollingIntervalSeconds: spec.pollingInterval,
      trigger: readTrigger(objects, first, owner),
      scaling: {
        ...replicaBounds(first, spec),
        strategy:
          strategy.strategy === "custom"
            ? {
                name: "custom",
                queueLengthDeduction: strategy.customScalingQueueLengthDeduction,
                runningJobPercentage: strategy.customScalingRunningJobPercentage,
              }
            : { name: strategy.strategy },
      },
      successfulJobsHistoryLimit: spec.successfulJobsHistoryLimit,
      failedJobsHistoryLimit: spec.failedJobsHistoryLimit,
      backoffLimit: spec.jobTargetRef.backoffLimit,
      activeDeadlineSeconds: spec.jobTargetRef.activeDeadlineSeconds,
      podFailurePolicy: spec.jobTargetRef.podFailurePolicy?.rules ?? [],
      pod: readPod(spec.jobTargetRef.template.spec, owner),
    };
  }
  const { metadata, spec } = parse(scaledObject, object);
  const owner = `ScaledObject/${metadata.name}`;
  const target = objects.find((o) => o.kind === "Deployment" && o.metadata?.name === spec.scaleTargetRef.name);
  if (!target) throw new ManifestError(`${owner}: its Deployment ${spec.scaleTargetRef.name} is not in the manifests`);
  const first = spec.triggers[0] as (typeof spec.triggers)[number];
  const behavior = spec.advanced?.horizontalPodAutoscalerConfig?.behavior;
  return {
    kind: "ScaledObject",
    name: metadata.name,
    namespace: metadata.namespace,
    deployment: spec.scaleTargetRef.name,
    pollingIntervalSeconds: spec.pollingInterval,
    trigger: readTrigger(objects, first, owner),
    scaling: {
      ...replicaBounds(first, spec),
      cooldownSeconds: spec.cooldownPeriod,
      scaleUp: readRules(behavior?.scaleUp, DEFAULT_SCALE_UP),
      scaleDown: readRules(behavior?.scaleDown, DEFAULT_SCALE_DOWN),
    },
    pod: readPod(parse(deployment, target).spec.template.spec, `Deployment/${spec.scaleTargetRef.name}`),
  };
}
