/// <reference lib="dom" />
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
    this.token.type = "password";
    this.token.autocomplete = "off";
    this.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
    const start = element("button", { id: "start" }, "Start");
    start.type = "button";
    start.addEventListener("click", () => void this.start());
    container.replaceChildren(
      element("h2", {}, "Start a run"),
      element("label", {}, "Job ", this.job),
      element("label", {}, "Name ", this.name),
      this.fields,
      element("label", {}, "Access token ", this.token),
      start,
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

  private async start(): Promise<void> {
    const token = this.token.value.trim();
    if (!token) return this.say(["Type the access token first."], true);
    sessionStorage.setItem(TOKEN_KEY, token);
    const params: Record<string, unknown> = {};
    for (const [field, input] of this.inputs) {
      const value = paramValue(field, input);
      if (value !== undefined) params[field.name] = value;
    }
    const name = this.name.value.trim();
    const response = await fetch("/api/runs", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, accept: "application/json", "content-type": "application/json" },
      body: JSON.stringify({ job: this.job.value, ...(name ? { name } : {}), params }),
    }).catch((error: Error) => error);
    if (response instanceof Error) return this.say([`Not sent: ${response.message}`], true);
    const body = await response.json().catch(() => ({}));
    if (response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return this.say(["The access token was refused."], true);
    }
    if (!response.ok) return this.say(body.problems ?? [body.error ?? `${response.status}`], true);
    this.message.replaceChildren(
      body.created ? "Started: " : "Already there: ",
      element("a", { href: `/runs/${body.run}` }, `batch run ${body.run} "${body.batch}"`),
      ` (${body.status})`,
    );
    this.message.className = "message";
  }
}
