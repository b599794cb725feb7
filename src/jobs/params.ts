import { z } from "zod";
import { UsageError } from "../base/command-error";

/**
 * A run's parameters: declared by its job as a zod schema (`params: z.object({...})`), given
 * when the run starts, stored with the run as given, and parsed again with the job's schema
 * wherever they are used (a worker's chunk, a hook), so that its defaults and transforms apply
 * the same everywhere. docs/jobs.md, "Parameters".
 */

/** A job's parameters' schema: an object, whatever it transforms its fields into. */
export type ParamsSchema = z.ZodType<Record<string, unknown>>;

/** The parameters as given (JSON), before the job's schema parses them. */
export type GivenParams = Record<string, unknown>;

export type ParsedParams = { ok: true; params: Record<string, unknown> } | { ok: false; problems: string[] };

/** Parses the given parameters with the job's schema; the problems one line each, "path: message". */
export function parseParams(
  job: { name: string; params: ParamsSchema | undefined },
  given: GivenParams | undefined,
): ParsedParams {
  const input = given ?? {};
  if (!job.params) {
    const names = Object.keys(input);
    if (names.length === 0) return { ok: true, params: {} };
    return { ok: false, problems: names.map((name) => `${name}: job ${job.name} takes no parameters`) };
  }
  // a z.object() drops keys it does not know: a misspelt parameter would go unnoticed
  const known = job.params instanceof z.ZodObject ? Object.keys(job.params.shape) : undefined;
  const unknown = known ? Object.keys(input).filter((name) => !known.includes(name)) : [];
  const parsed = job.params.safeParse(input);
  const problems = [
    ...unknown.map((name) => `${name}: not a parameter of job ${job.name} (its parameters: ${known?.join(", ")})`),
    ...(parsed.success
      ? []
      : parsed.error.issues.map((issue) => `${issue.path.map(String).join(".") || "params"}: ${issue.message}`)),
  ];
  if (problems.length > 0 || !parsed.success) return { ok: false, problems };
  return { ok: true, params: parsed.data };
}

/** The given parameters parsed, or a usage error with a line for each problem: what a start or a dry run takes. */
export function checkParams(
  job: { name: string; params: ParamsSchema | undefined },
  given: GivenParams | undefined,
): Record<string, unknown> {
  const parsed = parseParams(job, given);
  if (parsed.ok) return parsed.params;
  throw new UsageError(`parameters of job ${job.name}: ${parsed.problems.join("; ")}`, parsed.problems);
}

/**
 * The parameters as the job's schema reads them, as JSON, to compare two starts by: the given
 * ones where the schema refuses them (a run started under an older schema) or its output is no
 * JSON (a BigInt).
 */
export function comparableParams(
  job: { name: string; params: ParamsSchema | undefined },
  given: GivenParams | undefined,
): GivenParams | undefined {
  const parsed = parseParams(job, given);
  if (!parsed.ok) return given;
  try {
    return JSON.parse(JSON.stringify(parsed.params)) as GivenParams;
  } catch {
    return given;
  }
}

/** The parameters' JSON Schema as a starter gives them (their types, defaults and descriptions); {} without. */
export function paramsJsonSchema(schema: ParamsSchema | undefined): Record<string, unknown> {
  if (!schema) return { type: "object", properties: {} };
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}

/** Whether a JSON Schema takes text: a string type, alone or in a union. */
function takesText(schema: unknown): boolean {
  if (typeof schema !== "object" || schema === null) return false;
  const { type, anyOf, oneOf } = schema as { type?: unknown; anyOf?: unknown[]; oneOf?: unknown[] };
  if (type === "string" || (Array.isArray(type) && type.includes("string"))) return true;
  return [...(anyOf ?? []), ...(oneOf ?? [])].some(takesText);
}

/**
 * `--param key=value` assignments as the parameters they give: a parameter whose schema takes
 * text gets the value as written; any other, the value read as JSON (`10`, `true`, `[1,2]`),
 * or as written when it is no JSON. Problems one line each.
 */
export function paramsFromAssignments(
  schema: ParamsSchema | undefined,
  assignments: readonly string[],
): { params: GivenParams; problems: string[] } {
  const properties = (paramsJsonSchema(schema).properties ?? {}) as Record<string, unknown>;
  const params: GivenParams = {};
  const problems: string[] = [];
  for (const assignment of assignments) {
    const equals = assignment.indexOf("=");
    if (equals < 1) {
      problems.push(`--param ${assignment}: must be key=value`);
      continue;
    }
    const name = assignment.slice(0, equals);
    const text = assignment.slice(equals + 1);
    if (Object.hasOwn(params, name)) problems.push(`${name}: given twice`);
    params[name] = takesText(properties[name]) ? text : readJson(text);
  }
  return { params, problems };
}

function readJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A run's stored parameters parsed by its job's schema as a worker or a hook has it now; a schema
 * that refuses them (the job's file changed since the run started) throws, naming each problem.
 */
export function runParamsFor(
  job: { name: string; params: ParamsSchema | undefined },
  runId: number,
  given: GivenParams | undefined,
): Record<string, unknown> {
  const parsed = parseParams(job, given);
  if (parsed.ok) return parsed.params;
  throw new Error(
    `batch run ${runId}'s parameters do not fit job ${job.name}'s params schema now (its file changed since the run ` +
      `started?): ${parsed.problems.join("; ")}`,
  );
}

/** A parameter as a starter sees it: its name, its type in JSON Schema's words, its default, its description. */
export interface ParamField {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  description?: string;
  /** The values it takes, when they are few. */
  choices?: unknown[];
}

/** The type of a JSON Schema, in its own words: "integer", "string", "number | null", "any". */
function typeOf(schema: Record<string, unknown>): string {
  const { type, anyOf, oneOf } = schema;
  if (Array.isArray(type)) return type.join(" | ");
  if (typeof type === "string") return type;
  const options = (anyOf ?? oneOf) as Record<string, unknown>[] | undefined;
  return options ? options.map(typeOf).join(" | ") : "any";
}

/** The job's parameters, from its schema, in its order: for `jobs list` and the dashboard's start form. */
export function paramFields(schema: ParamsSchema | undefined): ParamField[] {
  const json = paramsJsonSchema(schema);
  const properties = (json.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = (json.required ?? []) as string[];
  return Object.entries(properties).map(([name, property]) => ({
    name,
    type: typeOf(property),
    required: required.includes(name) && !("default" in property),
    ...("default" in property ? { default: property.default } : {}),
    ...(typeof property.description === "string" ? { description: property.description } : {}),
    ...(Array.isArray(property.enum) ? { choices: property.enum } : {}),
  }));
}

/** "priceChangePct: integer = 0, region: string": a job's parameters in one line. */
export function describeParams(schema: ParamsSchema | undefined): string {
  return paramFields(schema)
    .map((field) => `${field.name}: ${field.type}${"default" in field ? ` = ${JSON.stringify(field.default)}` : ""}`)
    .join(", ");
}
