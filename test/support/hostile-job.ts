import fs from "node:fs/promises";
import path from "node:path";
import { ROOT } from "./processes";

/**
 * A job file for a worker process (JOBS_DIR), written by a test: the job over a table of the
 * test's making, whose every row holds in its `plan` column what the job's function is to do with
 * it: return a result, throw a value, hang, return something that is not a result. Values JSON
 * cannot hold (BigInt, Date, NaN, undefined, text with NUL) travel tagged (`encodeValue`).
 */

/** What the function does with one row. */
export type RowPlan =
  /** stray: the function also leaves a promise that rejects, unawaited. */
  | { do: "return" | "return-sync"; values: unknown[]; stray?: boolean }
  /** Returns a result without column `omit`. */
  | { do: "omit"; values: unknown[]; omit: number }
  | { do: "throw" | "throw-sync"; thrown: unknown }
  | { do: "return-raw"; value: unknown }
  | { do: "hang" };

export interface ResultColumnSpec {
  /** A kind of src/jobs/columns.ts. */
  kind: string;
  nullable: boolean;
}

export interface HostileJobSpec {
  name: string;
  table: string;
  keyType: "number" | "bigint" | "string";
  columns: ResultColumnSpec[];
  rowTimeoutMs: number;
}

const TAG = "~";

/** A value as JSON, those JSON cannot hold tagged; the job's `decode` gives it back. */
export function encodeValue(value: unknown): unknown {
  if (typeof value === "bigint") return { [TAG]: "bigint", v: String(value) };
  if (typeof value === "number" && (!Number.isFinite(value) || Object.is(value, -0))) {
    return { [TAG]: "number", v: Object.is(value, -0) ? "-0" : String(value) };
  }
  if (value instanceof Date) return { [TAG]: "date", v: Number.isNaN(value.getTime()) ? null : value.getTime() };
  if (value === undefined) return { [TAG]: "undefined" };
  if (typeof value === "symbol") return { [TAG]: "symbol" };
  if (typeof value === "string" && /[\0\uD800-\uDFFF]/.test(value)) {
    return { [TAG]: "chars", v: Array.from({ length: value.length }, (_, i) => value.charCodeAt(i)) };
  }
  if (Array.isArray(value)) return value.map(encodeValue);
  if (typeof value === "object" && value !== null) {
    if (value instanceof Error) return { [TAG]: "error", v: encodeValue(value.message) };
    const fields = Object.entries(value).map(([key, item]) => [key, encodeValue(item)]);
    return { [TAG]: Object.getPrototypeOf(value) === null ? "bare" : "object", v: Object.fromEntries(fields) };
  }
  return value;
}

/** The job's decoding of encodeValue, as JavaScript source. */
const DECODE = `
function decode(x) {
  if (Array.isArray(x)) return x.map(decode);
  if (x === null || typeof x !== "object") return x;
  const v = x.v;
  switch (x[${JSON.stringify(TAG)}]) {
    case "bigint": return BigInt(v);
    case "number": return v === "-0" ? -0 : Number(v);
    case "date": return new Date(v === null ? Number.NaN : v);
    case "undefined": return undefined;
    case "symbol": return Symbol("thrown");
    case "chars": return String.fromCharCode(...v);
    case "error": { const error = new Error("x"); error.message = decode(v); return error; }
    case "bare": return Object.assign(Object.create(null), decodeFields(v));
    case "object": return decodeFields(v);
  }
  throw new Error("untagged object in a plan");
}
function decodeFields(v) {
  return Object.fromEntries(Object.entries(v).map(([key, item]) => [key, decode(item)]));
}`;

/** Writes the job's module into `dir` (a JOBS_DIR), replacing any other job there. */
export async function writeHostileJob(dir: string, spec: HostileJobSpec): Promise<void> {
  for (const file of await fs.readdir(dir)) await fs.rm(path.join(dir, file));
  const writes = spec.columns
    .map(({ kind, nullable }, index) => `c${index}: column.${kind}("c${index}")${nullable ? ".nullable()" : ""},`)
    .join("\n      ");
  const source = `"use strict";
const { column, defineJob } = require(${JSON.stringify(path.join(ROOT, "dist/src/index.js"))});
${DECODE}
function result(plan, key) {
  const result = { seen: typeof key + " " + String(key) };
  plan.values.forEach((value, index) => {
    if (plan.omit !== index) result["c" + index] = value;
  });
  return result;
}
module.exports = defineJob({
  name: ${JSON.stringify(spec.name)},
  table: ${JSON.stringify(spec.table)},
  key: "id",
  keyType: ${JSON.stringify(spec.keyType)},
  where: { tag: "mine" },
  reads: { plan: column.jsonb() },
  writes: {
      seen: column.text(),
      ${writes}
  },
  state: "prop",
  defaults: { rowTimeoutMs: ${spec.rowTimeoutMs} },
  process(record) {
    const plan = decode(record.plan);
    if (plan.stray) Promise.reject(new Error("a stray promise of the job's"));
    switch (plan.do) {
      case "return-sync": return result(plan, record.id);
      case "throw-sync": throw plan.thrown;
      case "return-raw": return Promise.resolve(plan.value);
      case "hang": return new Promise(() => undefined);
      case "throw": return Promise.reject(plan.thrown);
      default: return Promise.resolve(result(plan, record.id));
    }
  },
});
`;
  await fs.writeFile(path.join(dir, `${spec.name}.js`), source);
}
