import fs from "node:fs";
import path from "node:path";
import { parseConfig } from "../../src/config/config";
import { type K8sObject, OVERLAYS, renderDirectory, renderWithComponents, validate } from "../support/manifests";
import { ROOT } from "../support/processes";

/**
 * k8s/components/dashboard (and dashboard-controls after it), added to each overlay as docs/dashboard.md
 * says: the dashboard's Deployment, Service and NetworkPolicy match their schemas, run the
 * overlay's image in its namespace, read through the batch_viewer login (or, with the controls,
 * the admin login and the token), listen on every interface of the pod, and are what the Service
 * and the PodMonitor of k8s/monitoring reach.
 */

type Env = { name: string; value?: string; valueFrom?: { secretKeyRef?: { key: string; optional?: boolean } } };
type Container = { image: string; command: string[]; env: Env[]; ports: { name: string; containerPort: number }[] };

const find = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as K8sObject & Record<string, any>;

function workerImage(objects: K8sObject[]): string {
  const workers = objects.find((o) => o.kind === "ScaledJob" || o.kind === "Deployment") as any;
  const template = workers.kind === "ScaledJob" ? workers.spec.jobTargetRef.template : workers.spec.template;
  return template.spec.containers[0].image;
}

const envOf = (container: Container) => Object.fromEntries(container.env.map((entry) => [entry.name, entry]));

describe.each(OVERLAYS)("the dashboard added to overlay %s", (overlay) => {
  const plain = renderWithComponents(overlay, ["dashboard"]);
  const controlled = renderWithComponents(overlay, ["dashboard", "dashboard-controls"]);
  const deployment = find(plain, "Deployment", "pg-batch-dashboard");
  const container: Container = deployment.spec.template.spec.containers[0];

  it("renders a Deployment, a Service and a NetworkPolicy that match their schemas, in the overlay's namespace and image", () => {
    for (const [kind, name] of [
      ["Deployment", "pg-batch-dashboard"],
      ["Service", "pg-batch-dashboard"],
      ["NetworkPolicy", "pg-batch-dashboard"],
    ] as const) {
      const object = find(plain, kind, name);
      expect(validate(object)).toEqual([]);
      expect(object.metadata.namespace).toBe("pg-batch");
    }
    expect(container.image).toBe(workerImage(plain));
    expect(container.command).toEqual(["node", "dist/app/dashboard.js"]);
    expect(fs.existsSync(path.join(ROOT, "dist/app/dashboard.js"))).toBe(true);
  });

  it("reads through the viewer login, on every interface of the pod, row errors only with the read token", () => {
    const env = envOf(container);
    expect(env.MONITOR_DATABASE_URL?.valueFrom?.secretKeyRef?.key).toBe("viewer-url");
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.DASHBOARD_TOKEN).toBeUndefined();
    expect(env.DASHBOARD_READ_TOKEN?.valueFrom?.secretKeyRef).toMatchObject({
      key: "dashboard-read-token",
      optional: true,
    });
    expect(env.DASHBOARD_HOST?.value).toBe("0.0.0.0");
    // the settings it is given are the dashboard's own, and valid
    const values = Object.fromEntries(container.env.map((entry) => [entry.name, entry.value ?? "x".repeat(24)]));
    const config = parseConfig({ ...values, MONITOR_DATABASE_URL: "postgres://viewer@db/app" });
    expect(config.dashboard).toMatchObject({ host: "0.0.0.0", port: container.ports[0]?.containerPort });
  });

  it("with dashboard-controls, connects as the admin login and takes the control token instead", () => {
    const env = envOf(find(controlled, "Deployment", "pg-batch-dashboard").spec.template.spec.containers[0]);
    expect(env.MONITOR_DATABASE_URL).toBeUndefined();
    expect(env.DATABASE_URL?.valueFrom?.secretKeyRef?.key).toBe("admin-url");
    expect(env.DASHBOARD_TOKEN?.valueFrom?.secretKeyRef?.key).toBe("dashboard-token");
    expect(env.DASHBOARD_HOST?.value).toBe("0.0.0.0");
  });

  it("is reached by its Service and scraped by the PodMonitor of k8s/monitoring on its http port", () => {
    const labels = deployment.spec.template.metadata.labels;
    const service = find(plain, "Service", "pg-batch-dashboard");
    for (const [key, value] of Object.entries(service.spec.selector)) expect(labels[key]).toBe(value);
    expect(container.ports.map((port) => port.name)).toContain(service.spec.ports[0].targetPort);
    const policy = find(plain, "NetworkPolicy", "pg-batch-dashboard");
    for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels)) expect(labels[key]).toBe(value);
    expect(policy.spec.ingress[0].ports[0].port).toBe(container.ports[0]?.containerPort);
    const monitor = renderDirectory(path.join(ROOT, "k8s/monitoring")).find((o) => o.kind === "PodMonitor") as any;
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) expect(labels[key]).toBe(value);
    expect(monitor.spec.selector.matchExpressions[0].values).toContain(labels["app.kubernetes.io/component"]);
    expect(container.ports.map((port) => port.name)).toContain("http");
  });
});
