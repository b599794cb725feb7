/// <reference lib="dom" />
import { element, isEnded, TOKEN_KEY } from "./common";

/**
 * Pause, resume, cancel and retry, shown only where the dashboard has them (started with a write-enabled
 * connection and DASHBOARD_TOKEN). The operator types the token once: it is kept in this tab's
 * sessionStorage and sent as `Authorization: Bearer`; every signal asks for confirmation first.
 */

type Signal = "pause" | "resume" | "cancel" | "retry";

/** When each signal applies (workflows/batch-control.ts refuses the others, or changes nothing). */
const APPLIES: Record<Signal, (status: string) => boolean> = {
  pause: (status) => status === "running" || status === "pending",
  resume: (status) => status === "paused",
  cancel: (status) => !isEnded(status) && status !== "cancelling",
  // a run that failed no row refuses, and says so
  retry: (status) => status === "completed" || status === "failed",
};

const LABELS: Record<Signal, string> = {
  pause: "Pause",
  resume: "Resume",
  cancel: "Cancel",
  retry: "Retry failed rows",
};

export class RunControls {
  private readonly token = element("input", { id: "token" });
  private readonly message = element("span", { className: "message", id: "control-message" });
  private readonly buttons = new Map<Signal, HTMLButtonElement>();
  private run = { name: "", status: "" };

  constructor(
    container: HTMLElement,
    private readonly runId: number,
    private readonly changed: () => void,
  ) {
    this.token.type = "password";
    this.token.autocomplete = "off";
    this.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
    this.token.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, this.token.value.trim()));
    for (const signal of Object.keys(LABELS) as Signal[]) {
      const button = element("button", { id: signal }, LABELS[signal]);
      button.type = "button";
      button.addEventListener("click", () => void this.send(signal));
      this.buttons.set(signal, button);
    }
    container.replaceChildren(
      element("label", {}, "Access token ", this.token),
      ...this.buttons.values(),
      this.message,
    );
  }

  /** Enables the signals that apply to the run as it is now. */
  update(run: { name: string; status: string }): void {
    this.run = run;
    for (const [signal, button] of this.buttons) button.disabled = !APPLIES[signal](run.status);
  }

  private say(text: string, error = false): void {
    this.message.textContent = text;
    this.message.className = error ? "message error" : "message";
  }

  private async send(signal: Signal): Promise<void> {
    const token = this.token.value.trim();
    if (!token) return this.say("Type the access token first.", true);
    sessionStorage.setItem(TOKEN_KEY, token);
    if (!confirm(`${LABELS[signal]} batch run ${this.runId} "${this.run.name}"?`)) return;
    const response = await fetch(`/api/runs/${this.runId}/${signal}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    }).catch((error: Error) => error);
    if (response instanceof Error) return this.say(`Not sent: ${response.message}`, true);
    const body = await response.json().catch(() => ({}));
    if (response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return this.say("The access token was refused.", true);
    }
    if (!response.ok) return this.say(body.error ?? `${response.status} ${response.statusText}`, true);
    this.say(body.changed ? `Done: the run is ${body.status}.` : `Nothing to do: the run is ${body.status}.`);
    this.changed();
  }
}
