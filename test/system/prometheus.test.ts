import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { freePort } from "../../src/base/free-port";
import { type Dashboard, startDashboard } from "../support/dashboard";
import { createMigratedDatabase, insertUsers, type TestDatabase } from "../support/database";
import { OVERLAYS, render } from "../support/manifests";
import { ROOT, seed, startWorker } from "../support/processes";
import { runByName, waitFor } from "../support/runs";

/**
 * k8s/monitoring: the PrometheusRule's rules pass `promtool check rules` and the unit tests of
 * test/system/prometheus-rules.test.yaml, and every metric the rules and the Grafana dashboard query,
 * but Kubernetes' and KEDA's own, is one a real worker or the real dashboard exports.
 */

const PROMTOOL = process.env.PROMTOOL ?? "/usr/bin/promtool";
const MONITORING = path.join(ROOT, "k8s/monitoring");

type Rule = { alert: string; expr: string };
const objects = parseAllDocuments(execFileSync("kubectl", ["kustomize", MONITORING], { encoding: "utf8" })).map((doc) =>
  doc.toJSON(),
);
const byKind = (kind: string) => objects.find((object) => object.kind === kind);
const rules: Rule[] = byKind("PrometheusRule").spec.groups.flatMap((group: { rules: Rule[] }) => group.rules);
const grafana = JSON.parse(fs.readFileSync(path.join(MONITORING, "grafana-dashboard.json"), "utf8"));
const queries: string[] = [
  ...grafana.panels.flatMap((panel: { targets: { expr: string }[] }) => panel.targets.map((target) => target.expr)),
  ...grafana.templating.list.flatMap((variable: { definition?: string }) => variable.definition ?? []),
];

/** The metric names a PromQL expression reads (functions, labels and keywords aside, by their shape). */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, "{}");
  const clauses = withoutStrings
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
    // Grafana's label_values(metric, label): the label is no metric
    .replace(/\blabel_values\(([^,]+),\s*\w+\)/g, "$1");
  return [...clauses.matchAll(/\b([a-z_][a-z0-9_]*)\b(?!\s*\()/g)]
    .map((match) => match[1] as string)
    .filter((name) => name.includes("_") && !/^\d/.test(name));
}

/** The metric a sample name belongs to: a histogram's _bucket, _sum and _count are its own. */
const family = (name: string) => name.replace(/_(bucket|sum|count)$/, "");

/** The metrics a Prometheus text exposition declares. */
const declared = (text: string) => [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1] as string);

function promtool(args: string[], cwd: string): { code: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: "utf8" });
  if (result.error) throw new Error(`${PROMTOOL} could not run (${result.error.message}): install Debian's prometheus`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("the alerts of k8s/monitoring", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-batch-rules-"));
    fs.writeFileSync(path.join(dir, "rules.yaml"), stringify(byKind("PrometheusRule").spec));
    fs.copyFileSync(path.join(ROOT, "test/system/prometheus-rules.test.yaml"), path.join(dir, "rules.test.yaml"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("cover what a platform team expects", () => {
    expect(rules.map((rule) => rule.alert).sort()).toEqual([
      "PgBatchBacklogWithoutWorkers",
      "PgBatchJobFailed",
      "PgBatchKedaScalerErrors",
      "PgBatchPodCannotStart",
      "PgBatchPodPending",
      "PgBatchRunFailed",
      "PgBatchRunThrottledLong",
      "PgBatchScheduleTickUndecided",
    ]);
  });

  it("pass promtool check rules", () => {
    const { code, output } = promtool(["check", "rules", "rules.yaml"], dir);
    expect(output).toContain("SUCCESS: 8 rules found");
    expect(code).toBe(0);
  });

  it("pass their promtool unit tests", () => {
    const { code, output } = promtool(["test", "rules", "rules.test.yaml"], dir);
    expect(output).toContain("SUCCESS");
    expect(code).toBe(0);
  });
});

describe("the PodMonitor of k8s/monitoring", () => {
  it("selects every overlay's worker pods on their metrics port", () => {
    const { selector, podMetricsEndpoints } = byKind("PodMonitor").spec;
    expect(podMetricsEndpoints.map((endpoint: { port: string }) => endpoint.port)).toEqual(["metrics", "http"]);
    for (const overlay of OVERLAYS) {
      const workers = render(overlay).flatMap((object: any) => {
        if (object.kind === "ScaledJob") return [object.spec.jobTargetRef.template];
        if (object.kind === "Deployment") return [object.spec.template];
        return [];
      });
      expect(workers.length).toBeGreaterThan(0);
      for (const template of workers) {
        const labels = template.metadata.labels;
        for (const [key, value] of Object.entries(selector.matchLabels)) expect(labels[key]).toBe(value);
        expect(selector.matchExpressions[0].values).toContain(labels[selector.matchExpressions[0].key]);
        expect(template.spec.containers[0].ports.map((port: { name: string }) => port.name)).toContain("metrics");
      }
    }
  });

  it("ships the Grafana dashboard in a ConfigMap for Grafana's sidecar", () => {
    const configMap = byKind("ConfigMap");
    expect(configMap.metadata.labels.grafana_dashboard).toBe("1");
    expect(JSON.parse(configMap.data["pg-batch.json"])).toEqual(grafana);
  });
});

describe("the metrics the alerts and the Grafana dashboard query", () => {
  let db: TestDatabase;
  let dashboard: Dashboard;
  let exported: Set<string>;
  beforeAll(async () => {
    db = await createMigratedDatabase();
    await insertUsers(db.pool, 500);
    await seed(["enqueue", "--batch-name", "scraped"], { DATABASE_URL: db.url, CHUNK_SIZE: "100" });
    const port = await freePort();
    const worker = startWorker([], { DATABASE_URL: db.url, METRICS_PORT: String(port) });
    try {
      await waitFor("the run to complete", async () => (await runByName(db.pool, "scraped")).status === "completed");
      const workerText = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      dashboard = await startDashboard({ DATABASE_URL: db.url });
      const dashboardText = await (await fetch(`${dashboard.url}/metrics`)).text();
      exported = new Set([...declared(workerText), ...declared(dashboardText)]);
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });
  afterAll(async () => {
    await dashboard?.stop();
    await db?.drop();
  });

  it("are found in the expressions", () => {
    const names = new Set([...rules.map((rule) => rule.expr), ...queries].flatMap(metricNames));
    expect([...names]).toEqual(expect.arrayContaining(["batch_backlog_chunks", "batch_claim_seconds_bucket"]));
    expect([...names]).not.toContain("batch_job");
  });

  it("are exported by a real worker or the real dashboard, but kube-state-metrics' and KEDA's", () => {
    const ours = [...rules.map((rule) => rule.expr), ...queries]
      .flatMap(metricNames)
      .filter((name) => !/^(kube|keda)_/.test(name));
    expect(ours.length).toBeGreaterThan(15);
    expect([...new Set(ours)].filter((name) => !exported.has(family(name)))).toEqual([]);
  });
});
