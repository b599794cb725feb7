import path from "node:path";
import ts from "typescript";
import { ROOT } from "./processes";

/**
 * Unknown fields of a Kubernetes object, from the TypeScript types of the kubernetes-models
 * packages: every key must be a property of its type there (maps, with an index signature, take
 * any key). Used when the workplace's strict JSON schemas are not at hand.
 */

const MODELS: Record<string, [module: string, type: string]> = {
  ScaledJob: ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob", "IScaledJob"],
  ScaledObject: ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "IScaledObject"],
  TriggerAuthentication: ["@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication", "ITriggerAuthentication"],
  PodMonitor: ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "IPodMonitor"],
  PrometheusRule: ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "IPrometheusRule"],
  ConfigMap: ["kubernetes-models/v1/ConfigMap", "IConfigMap"],
  Deployment: ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
  Job: ["kubernetes-models/batch/v1/Job", "IJob"],
  PodDisruptionBudget: ["kubernetes-models/policy/v1/PodDisruptionBudget", "IPodDisruptionBudget"],
  NetworkPolicy: ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "INetworkPolicy"],
  Secret: ["kubernetes-models/v1/Secret", "ISecret"],
  ServiceAccount: ["kubernetes-models/v1/ServiceAccount", "IServiceAccount"],
  Service: ["kubernetes-models/v1/Service", "IService"],
  Namespace: ["kubernetes-models/v1/Namespace", "INamespace"],
};

let program: { checker: ts.TypeChecker; types: Map<string, ts.Type> } | undefined;

const declarationFile = (module: string) => path.join(ROOT, "node_modules", `${module}.d.ts`);

function load() {
  if (program) return program;
  const files = Object.values(MODELS).map(([module]) => declarationFile(module));
  const created = ts.createProgram(files, {
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    baseUrl: path.join(ROOT, "node_modules"),
  });
  const checker = created.getTypeChecker();
  const types = new Map<string, ts.Type>();
  for (const [kind, [module, name]] of Object.entries(MODELS)) {
    const file = created.getSourceFile(declarationFile(module));
    const symbol = file && checker.getSymbolAtLocation(file);
    const exported = symbol && checker.getExportsOfModule(symbol).find((s) => s.name === name);
    if (exported) types.set(kind, checker.getDeclaredTypeOfSymbol(exported));
  }
  program = { checker, types };
  return program;
}

function walk(checker: ts.TypeChecker, value: unknown, type: ts.Type, at: string, unknown: string[]): void {
  if (value === null || typeof value !== "object") return;
  const target = checker.getNonNullableType(type);
  const parts = target.isUnion() ? target.types : [target];
  if (Array.isArray(value)) {
    for (const part of parts) {
      if (checker.isArrayType(part)) {
        const element = checker.getTypeArguments(part as ts.TypeReference)[0];
        if (element) {
          for (const [i, item] of value.entries()) walk(checker, item, element, `${at}[${i}]`, unknown);
        }
        return;
      }
    }
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const property = parts.map((part) => part.getProperty(key)).find(Boolean);
    if (property) {
      walk(checker, child, checker.getTypeOfSymbol(property), `${at}.${key}`, unknown);
      continue;
    }
    const index = parts.map((part) => part.getStringIndexType()).find(Boolean);
    if (index) walk(checker, child, index, `${at}.${key}`, unknown);
    else if (parts.some((part) => part.getProperties().length > 0)) unknown.push(`${at}.${key}`);
  }
}

export function unknownFields(object: { kind: string }): string[] {
  const { checker, types } = load();
  const type = types.get(object.kind);
  if (!type) return [`no type for kind ${object.kind}`];
  const unknown: string[] = [];
  walk(checker, object, type, object.kind, unknown);
  return unknown;
}
