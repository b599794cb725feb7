/// <reference lib="dom" />
import type { DryRunReport } from "../../src/processing/dry-run";
import type { StartableJob } from "../control-api";
import { element, TOKEN_KEY } from "./common";

/**
 * Starting a run of a job with its parameters, shown only where the dashboard has controls. A
 * field a parameter each, by its type from the job's schema; a field left empty is left to the
 * schema's default. The server checks them as `seed enqueue` does and answers each problem.
 */

type Field = StartableJob["params"][number];

/** A parameter's input: a number, a checkbox, a choice, or text (JSON for lists and objects). */
function inputFor(field: Field): HTMLInputElement | HTMLSelectElement {
  if (field.choices) {
    const select = element("select", { id: `param-${field.name}` });
    select.append(element("option", {}, ""), ...field.choices.map((choice) => element("option", {}, String(choice))));
    return select;
  }
  const input = element("input", { id: `param-${field.name}` });
  input.type =
    field.type === "boolean" ? "checkbox" : field.type === "integer" || field.type === "number" ? "number" : "text";
  if ("default" in field && field.type !== "boolean") input.placeholder = JSON.stringify(field.default);
  if (field.type === "boolean") input.checked = field.default === true;
  return input;
}

/** The value a filled input gives its parameter; undefined: left to the schema. */
function paramValue(field: Field, input: HTMLInputElement | HTMLSelectElement): unknown {
  if (input instanceof HTMLInputElement && input.type === "checkbox") return input.checked;
  const text = input.value;
  if (text === "") return undefined;
  if (field.type === "string" || field.choices?.every((choice) => typeof choice === "string")) return text;
  if (field.type === "integer" || field.type === "number") return Number(text);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class StartForm {
  private readonly job = element("select", { id: "start-job" });
  private readonly name = element("input", { id: "start-name" });
  private readonly canary = element("input", { id: "start-canary" });
  private readonly token = element("input", { id: "start-token" });
  private readonly fields = element("div", { id: "start-params" });
  private readonly message = element("span", { className: "message", id: "start-message" });
  private inputs: [Field, HTMLInputElement | HTMLSelectElement][] = [];

  constructor(
    container: HTMLElement,
    private readonly jobs: StartableJob[],
  ) {
    this.job.append(...jobs.map((job) => element("option", {}, job.name)));
    this.job.addEventListener("change", () => this.showParams());
    this.name.placeholder = "JOB-batch";
    this.canary.type = "number";
    this.canary.min = "1";
    this.canary.placeholder = "none";
    this.canary.title = "the run works through its first rows by key, then pauses for you to look";
    this.token.type = "password";
    this.token.autocomplete = "off";
    this.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
    const start = element("button", { id: "start" }, "Start");
    start.type = "button";
    start.addEventListener("click", () => void this.start());
    const dryRun = element("button", { id: "dry-run" }, "Dry run");
    dryRun.type = "button";
    dryRun.title = "the job's function on a sample of the rows a run would take; nothing written";
    dryRun.addEventListener("click", () => void this.dryRun());
    container.replaceChildren(
      element("h2", {}, "Start a run"),
      element("label", {}, "Job ", this.job),
      element("label", {}, "Name ", this.name),
      this.fields,
      element("label", {}, "Canary rows ", this.canary),
      element("label", {}, "Access token ", this.token),
      start,
      dryRun,
      this.message,
    );
    this.showParams();
  }

  private showParams(): void {
    const job = this.jobs.find((known) => known.name === this.job.value);
    this.name.placeholder = `${job?.name ?? "JOB"}-batch`;
    this.inputs = (job?.params ?? []).map((field) => [field, inputFor(field)]);
    this.fields.replaceChildren(
      ...this.inputs.map(([field, input]) =>
        element(
          "label",
          { title: field.description ?? "" },
          `${field.name} (${field.type}${field.required ? ", required" : ""}) `,
          input,
        ),
      ),
    );
  }

  private say(lines: string[], error = false): void {
    this.message.replaceChildren(...lines.flatMap((line, index) => (index > 0 ? [element("br"), line] : [line])));
    this.message.className = error ? "message error" : "message";
  }

  /** Shows what went wrong; undefined, for post to return. */
  private refused(lines: string[]): undefined {
    this.say(lines, true);
    return undefined;
  }

  /** Posts the job and its parameters (and `extra`) to `path`: the answer's body, or undefined once a problem is shown. */
  private async post<T>(path: string, extra: Record<string, unknown> = {}): Promise<T | undefined> {
    const token = this.token.value.trim();
    if (!token) return this.refused(["Type the access token first."]);
    sessionStorage.setItem(TOKEN_KEY, token);
    const params: Record<string, unknown> = {};
    for (const [field, input] of this.inputs) {
      const value = paramValue(field, input);
      if (value !== undefined) params[field.name] = value;
    }
    const response = await fetch(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, accept: "application/json", "content-type": "application/json" },
      body: JSON.stringify({ job: this.job.value, ...extra, params }),
    }).catch((error: Error) => error);
    if (response instanceof Error) return this.refused([`Not sent: ${response.message}`]);
    const body = await response.json().catch(() => ({}));
    if (response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return this.refused(["The access token was refused."]);
    }
    if (!response.ok) return this.refused(body.problems ?? [body.error ?? `${response.status}`]);
    return body as T;
  }

  /** What a dry run would do, as `seed enqueue --dry-run` says it: outcomes, errors by message, a few results. */
  private async dryRun(): Promise<void> {
    this.say(["Dry run under way..."]);
    const report = await this.post<DryRunReport>("/api/dry-runs");
    if (!report) return;
    this.say([
      `Dry run of job ${report.job}: ${report.sampled} sampled rows, nothing written.`,
      `Would complete ${report.wouldComplete}, would fail ${report.wouldFail}; ${report.recordsPerSecond} records/s.`,
      ...report.errors.map(
        (e: { count: number; error: string; keys: string[] }) => `${e.count} × ${e.error} (keys ${e.keys.join(", ")})`,
      ),
      ...report.results.map((r: { key: string; result: unknown }) => `${r.key} → ${JSON.stringify(r.result)}`),
    ]);
  }

  private async start(): Promise<void> {
    const name = this.name.value.trim();
    const canary = this.canary.value === "" ? undefined : Number(this.canary.value);
    const body = await this.post<{ run: number; batch: string; created: boolean; status: string }>("/api/runs", {
      ...(name ? { name } : {}),
      ...(canary === undefined ? {} : { canary }),
    });
    if (!body) return;
    this.message.replaceChildren(
      body.created ? "Started: " : "Already there: ",
      element("a", { href: `/runs/${body.run}` }, `batch run ${body.run} "${body.batch}"`),
      ` (${body.status})`,
    );
    this.message.className = "message";
  }
}
