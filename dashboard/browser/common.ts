/// <reference lib="dom" />

/**
 * What the pages' scripts share: building the DOM, fetching the dashboard's JSON, formatting
 * figures. Whatever the server sends, names and error messages above all, reaches the page as
 * text (textContent), never as markup.
 */

/** A server type as its JSON arrives: dates as ISO strings. */
export type Json<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Json<U>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

export type Child = Node | string | number | null | undefined;

interface Props {
  className?: string;
  href?: string;
  title?: string;
  id?: string;
}

export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.title) node.title = props.title;
  if (props.id) node.id = props.id;
  if (props.href && node instanceof HTMLAnchorElement) node.href = props.href;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table's header and rows; numeric columns align right. */
export function fillTable(
  table: HTMLElement,
  headers: string[],
  rows: Child[][],
  numeric: number[] = [],
  empty = "none",
) {
  const cell = (tag: "th" | "td", value: Child, column: number) =>
    element(tag, { className: numeric.includes(column) ? "number" : "" }, value);
  const head = element("thead", {}, element("tr", {}, ...headers.map((header, i) => cell("th", header, i))));
  const body = element(
    "tbody",
    {},
    ...rows.map((row) => element("tr", {}, ...row.map((value, i) => cell("td", value, i)))),
  );
  if (rows.length === 0)
    body.append(
      element("tr", {}, Object.assign(element("td", { className: "empty" }, empty), { colSpan: headers.length })),
    );
  table.replaceChildren(head, body);
}

/** Where this tab keeps the token the operator typed (controls or row errors): sessionStorage. */
export const TOKEN_KEY = "pg-batch-dashboard-token";

/** `Authorization: Bearer` with the token typed in this tab, if any. */
export function tokenHeaders(): Record<string, string> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** The server's JSON, or an Error carrying its message. */
export async function requestJson<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, { ...init, headers: { accept: "application/json", ...init?.headers } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ?? `${response.status} ${response.statusText}`);
  return body as T;
}

/** Runs `tick` now and then every `ms` after it ends; the header says whether the data is live. */
export function poll(ms: number, tick: () => Promise<void>): void {
  const live = document.getElementById("live");
  const once = async () => {
    try {
      await tick();
      if (live) {
        live.textContent = `live, updated ${new Date().toLocaleTimeString()}`;
        live.className = "live";
      }
    } catch (error) {
      if (live) {
        live.textContent = `not updated: ${(error as Error).message}`;
        live.className = "live lost";
      }
    }
    setTimeout(once, ms);
  };
  void once();
}

const countFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : countFormat.format(value);
}

export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`;
}

/** Local time as 2026-11-29 18:02:12 (Sweden's locale writes it so). */
export function formatTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString("sv-SE") : "–";
}

/** Text that may be long and unbroken (names, messages, JSON): it wraps anywhere. */
export function longText(value: string | null): HTMLElement | null {
  return value === null ? null : element("span", { className: "text" }, value);
}

export function statusBadge(status: string): HTMLElement {
  return element("span", { className: `status ${status}` }, status);
}

const ENDED = new Set(["completed", "failed", "cancelled"]);

/** Whether a run is over (ENDED_RUN_STATUSES of src/runs/model.ts). */
export function isEnded(status: string): boolean {
  return ENDED.has(status);
}
