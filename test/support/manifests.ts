import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { parse, parseAllDocuments, stringify } from "yaml";
import { unknownFields } from "./known-fields";
import { ROOT } from "./processes";

/** A Kubernetes object as rendered. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export const OVERLAYS = ["local", "production", "long-running"] as const;

/** `kubectl kustomize` of an overlay, as objects. */
export function render(overlay: string): K8sObject[] {
  return renderDirectory(path.join(ROOT, "k8s/overlays", overlay));
}

export function renderDirectory(dir: string, ...options: string[]): K8sObject[] {
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", dir, ...options], { encoding: "utf8" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error("kubectl is not installed: the manifests are rendered with kubectl kustomize, as in a cluster");
    }
    throw error;
  }
  return parseAllDocuments(text).map((doc) => doc.toJSON() as K8sObject);
}

/**
 * An overlay with components added to its kustomization, as docs/dashboard.md tells a user to: a copy
 * of it in a directory of its own, its paths made relative to there (kustomize takes no absolute
 * path), rendered with the overlay's own files let in from outside that directory.
 */
export function renderWithComponents(overlay: string, components: string[]): K8sObject[] {
  const source = path.join(ROOT, "k8s/overlays", overlay);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pg-batch-${overlay}-`));
  try {
    const kustomization = parse(fs.readFileSync(path.join(source, "kustomization.yaml"), "utf8"));
    const from = (entry: string) => path.relative(dir, path.resolve(source, entry));
    kustomization.resources = kustomization.resources.map(from);
    for (const patch of kustomization.patches ?? []) if (patch.path) patch.path = from(patch.path);
    kustomization.components = [
      ...(kustomization.components ?? []).map(from),
      ...components.map((component) => path.relative(dir, path.join(ROOT, "k8s/components", component))),
    ];
    fs.writeFileSync(path.join(dir, "kustomization.yaml"), stringify(kustomization));
    return renderDirectory(dir, "--load-restrictor=LoadRestrictionsNone");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(fs.readFileSync(path.join(ROOT, file), "utf8")).map((doc) => doc.toJSON() as K8sObject);
}

/**
 * Where the schemas come from: the workplace's ../shared/schemas (KEDA v2.20.2's CRDs and
 * Kubernetes v1.32.2's strict JSON schemas) when it is there; otherwise the schemas that ship
 * with the kubernetes-models and @kubernetes-models/keda packages.
 */
export const SHARED_SCHEMAS = process.env.SHARED_SCHEMAS_DIR ?? path.resolve(ROOT, "../shared/schemas");
export const schemaSource = fs.existsSync(SHARED_SCHEMAS)
  ? `${SHARED_SCHEMAS} (KEDA v2.20.2 CRDs, Kubernetes v1.32.2 strict schemas)`
  : "the kubernetes-models and @kubernetes-models/keda packages";

/** The CRDs in ../shared/schemas, those of the Prometheus Operator only where it holds them. */
const CRDS: Record<string, string> = {
  ScaledJob: "keda/keda.sh_scaledjobs.yaml",
  ScaledObject: "keda/keda.sh_scaledobjects.yaml",
  TriggerAuthentication: "keda/keda.sh_triggerauthentications.yaml",
  PodMonitor: "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
  PrometheusRule: "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
};

/** Where the Prometheus Operator's objects are checked: its CRDs in ../shared/schemas, or its models' package. */
export const prometheusOperatorSchemaSource = fs.existsSync(path.join(SHARED_SCHEMAS, CRDS.PodMonitor as string))
  ? `the Prometheus Operator's CRDs in ${SHARED_SCHEMAS}`
  : "the @kubernetes-models/prometheus-operator package";

const K8S_SCHEMAS: Record<string, string> = {
  Deployment: "deployment-apps-v1.json",
  Job: "job-batch-v1.json",
  Secret: "secret-v1.json",
  ServiceAccount: "serviceaccount-v1.json",
  NetworkPolicy: "networkpolicy-networking-v1.json",
  PodDisruptionBudget: "poddisruptionbudget-policy-v1.json",
  ConfigMap: "configmap-v1.json",
};

/**
 * A CRD's structural schema as strict JSON Schema: objects that list their properties accept no
 * others (the API server would drop them silently), int-or-string means either.
 */
function strictCrdSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictCrdSchema);
  if (node === null || typeof node !== "object") return node;
  const schema: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (!key.startsWith("x-kubernetes-")) schema[key] = strictCrdSchema(value);
  }
  const source = node as Record<string, unknown>;
  if (source["x-kubernetes-int-or-string"]) {
    delete schema.type;
    schema.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (
    schema.properties &&
    schema.additionalProperties === undefined &&
    !source["x-kubernetes-preserve-unknown-fields"]
  ) {
    schema.additionalProperties = false;
  }
  return schema;
}

function sharedValidators(): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const format of ["int32", "int64", "int-or-string", "byte", "double", "float"]) ajv.addFormat(format, true);
  const validators = new Map<string, ValidateFunction>();
  for (const [kind, file] of Object.entries(CRDS)) {
    if (!fs.existsSync(path.join(SHARED_SCHEMAS, file))) continue;
    const crd = parseAllDocuments(fs.readFileSync(path.join(SHARED_SCHEMAS, file), "utf8"))[0]?.toJSON();
    validators.set(kind, ajv.compile(strictCrdSchema(crd.spec.versions[0].schema.openAPIV3Schema) as object));
  }
  for (const [kind, file] of Object.entries(K8S_SCHEMAS)) {
    const schema = JSON.parse(fs.readFileSync(path.join(SHARED_SCHEMAS, "kubernetes/v1.32.2", file), "utf8"));
    delete schema.$schema;
    validators.set(kind, ajv.compile(schema));
  }
  return validators;
}

/**
 * kubernetes-models' own validation (its models throw on an invalid object), which lets unknown
 * fields through, and unknownFields for those.
 */
function modelValidate(object: K8sObject): string[] {
  const models: Record<string, () => { new (data: object): { validate(): void } }> = {
    ScaledJob: () => require("@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob").ScaledJob,
    ScaledObject: () => require("@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject").ScaledObject,
    TriggerAuthentication: () =>
      require("@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication").TriggerAuthentication,
    PodMonitor: () => require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor").PodMonitor,
    PrometheusRule: () =>
      require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule").PrometheusRule,
    ConfigMap: () => require("kubernetes-models/v1/ConfigMap").ConfigMap,
    Deployment: () => require("kubernetes-models/apps/v1/Deployment").Deployment,
    Job: () => require("kubernetes-models/batch/v1/Job").Job,
    PodDisruptionBudget: () => require("kubernetes-models/policy/v1/PodDisruptionBudget").PodDisruptionBudget,
    NetworkPolicy: () => require("kubernetes-models/networking.k8s.io/v1/NetworkPolicy").NetworkPolicy,
    Secret: () => require("kubernetes-models/v1/Secret").Secret,
    ServiceAccount: () => require("kubernetes-models/v1/ServiceAccount").ServiceAccount,
    Service: () => require("kubernetes-models/v1/Service").Service,
    Namespace: () => require("kubernetes-models/v1/Namespace").Namespace,
  };
  const model = models[object.kind];
  if (!model) return [`no schema for kind ${object.kind}`];
  const unknown = unknownFields(object).map((field) => `unknown field ${field}`);
  try {
    const Model = model();
    new Model(object).validate();
    return unknown;
  } catch (error) {
    return [(error as Error).message, ...unknown];
  }
}

let shared: Map<string, ValidateFunction> | undefined;

/** Schema errors of an object: against the shared schemas where they have its kind, else the models. */
export function validate(object: K8sObject): string[] {
  if (fs.existsSync(SHARED_SCHEMAS)) {
    shared ??= sharedValidators();
    const validator = shared.get(object.kind);
    if (validator) {
      const data: unknown = object;
      if (validator(data)) return [];
      return (validator.errors ?? []).map(
        (e) => `${object.kind}/${object.metadata.name}${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`,
      );
    }
  }
  return modelValidate(object);
}

export const EXPECTED_API_VERSIONS: Record<string, string> = {
  ScaledJob: "keda.sh/v1alpha1",
  ScaledObject: "keda.sh/v1alpha1",
  TriggerAuthentication: "keda.sh/v1alpha1",
  PodMonitor: "monitoring.coreos.com/v1",
  PrometheusRule: "monitoring.coreos.com/v1",
  ConfigMap: "v1",
  Deployment: "apps/v1",
  Job: "batch/v1",
  PodDisruptionBudget: "policy/v1",
  NetworkPolicy: "networking.k8s.io/v1",
  Secret: "v1",
  ServiceAccount: "v1",
  Service: "v1",
  Namespace: "v1",
};
