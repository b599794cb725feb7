import type http from "node:http";
import os from "node:os";
import { CommandError, UsageError } from "../src/base/command-error";
import type { Logger } from "../src/base/logger";
import type { ParamField } from "../src/jobs/params";
import type { DryRunReport } from "../src/processing/dry-run";
import { carriesToken } from "./access";
import { json, type Reply, type Route } from "./routes";

/**
 * Pause, resume, cancel and retry, starting a run with its parameters, and a dry run of a job,
 * for requests that carry the access token (`Authorization: Bearer`).
 * The signals themselves are the workflow's (workflows/batch-control.ts), handed in by the entry
 * that composes the dashboard (app/dashboard.ts): the core knows no workflow.
 */

export type RunSignal = "pause" | "resume" | "cancel" | "retry";

/**
 * Sends `signal` to run `runId`: its status afterwards and whether it changed; undefined when no
 * such run exists. A run whose state refuses the signal throws a CommandError saying why.
 */
export type SendSignal = (
  signal: RunSignal,
  runId: number,
  actor: string,
) => Promise<{ status: string; changed: boolean } | undefined>;

/** A job a run can be started of from the dashboard, and its parameters (from its schema). */
export interface StartableJob {
  name: string;
  description: string;
  params: ParamField[];
}

/**
 * What a start asks for: the job, the run's name (JOB-batch unless given), its parameters as
 * given, and its canary (rows to work through before it pauses itself) when it has one.
 */
export interface StartRequest {
  job: string;
  name?: string;
  params: Record<string, unknown>;
  canary?: number;
}

/**
 * Starts the run asked for, as `seed enqueue` does (planned at once), or returns the existing
 * run of that name; undefined when no such job exists. Bad parameters throw a UsageError, a line
 * each; a start the workflow refuses, a CommandError saying why.
 */
export type StartRun = (
  request: StartRequest,
  actor: string,
) => Promise<{ run: number; batch: string; created: boolean; status: string } | undefined>;

/**
 * A dry run of the job asked for, with its parameters, as `seed enqueue --dry-run` does: a
 * sample of its rows through its function, nothing written. Undefined when no such job exists;
 * bad parameters throw a UsageError, a line each.
 */
export type DryRun = (request: Omit<StartRequest, "name" | "canary">) => Promise<DryRunReport | undefined>;

export interface Controls {
  token: string;
  send: SendSignal;
  jobs: StartableJob[];
  start: StartRun;
  dryRun: DryRun;
}

/** A dashboard without controls, and why: its control endpoints answer 404 saying so. */
export interface ReadOnly {
  readOnlyBecause: string;
}

const readOnly = (controls: ReadOnly) =>
  json(404, { error: `this dashboard is read-only: ${controls.readOnlyBecause}` });

/** A control's answer: refused on a read-only dashboard (404) and without the token (403), else `handle`'s. */
function controlled(
  controls: Controls | ReadOnly,
  request: http.IncomingMessage,
  handle: (controls: Controls) => Promise<Reply>,
): Reply | Promise<Reply> {
  if ("readOnlyBecause" in controls) return readOnly(controls);
  if (!carriesToken(request, controls.token)) return json(403, { error: "a valid access token is needed" });
  return handle(controls);
}

async function answerSignal(
  controls: Controls,
  logger: Logger,
  [id, signal]: string[],
  request: http.IncomingMessage,
): Promise<Reply> {
  const runId = Number(id);
  try {
    const result = await controls.send(signal as RunSignal, runId, `dashboard@${os.hostname()}`);
    if (!result) return json(404, { error: `no batch run ${runId}` });
    logger.info({ run: runId, signal, ...result, from: request.socket.remoteAddress }, `dashboard: ${signal} run`);
    return json(200, { run: runId, ...result });
  } catch (error) {
    if (error instanceof CommandError) return json(409, { error: error.message });
    throw error;
  }
}

/** The largest start request read: a job's name, a run's name and its parameters. */
const MAX_START_BYTES = 64 * 1024;

async function readBody(request: http.IncomingMessage): Promise<string | undefined> {
  let body = "";
  for await (const chunk of request) {
    body += chunk;
    if (body.length > MAX_START_BYTES) return undefined;
  }
  return body;
}

/** The start a request's JSON body asks for, or why it asks for none. */
function startRequestOf(text: string | undefined): StartRequest | string {
  if (text === undefined) return `the request is over ${MAX_START_BYTES} bytes`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the request must be JSON: {"job": "NAME", "name": "RUN", "params": {...}}';
  }
  const fields = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const { job, name, params = {}, canary } = fields;
  if (typeof job !== "string") return "job must be a job's name";
  if (name !== undefined && (typeof name !== "string" || name.trim() === "" || name.length > 255))
    return "name must be 1 to 255 characters";
  if (typeof params !== "object" || params === null || Array.isArray(params)) return "params must be a JSON object";
  if (canary !== undefined && !(Number.isSafeInteger(canary) && (canary as number) >= 1))
    return "canary must be a whole number of at least 1";
  return { job, name, params: params as Record<string, unknown>, canary: canary as number | undefined };
}

async function answerStart(controls: Controls, logger: Logger, request: http.IncomingMessage): Promise<Reply> {
  const asked = startRequestOf(await readBody(request));
  if (typeof asked === "string") return json(400, { error: asked, problems: [asked] });
  try {
    const started = await controls.start(asked, `dashboard@${os.hostname()}`);
    if (!started) return json(404, { error: `no job named ${JSON.stringify(asked.job)}` });
    logger.info({ ...started, params: asked.params, from: request.socket.remoteAddress }, "dashboard: start run");
    return json(started.created ? 201 : 200, started);
  } catch (error) {
    if (error instanceof UsageError) return json(400, { error: error.message, problems: error.lines });
    if (error instanceof CommandError) return json(409, { error: error.message });
    throw error;
  }
}

/**
 * A dry run, for a request with the token: it runs the job's function, which may call other
 * systems (and spend their quotas), so it is a control, not a read.
 */
async function answerDryRun(controls: Controls, logger: Logger, request: http.IncomingMessage): Promise<Reply> {
  const asked = startRequestOf(await readBody(request));
  if (typeof asked === "string") return json(400, { error: asked, problems: [asked] });
  try {
    const report = await controls.dryRun({ job: asked.job, params: asked.params });
    if (!report) return json(404, { error: `no job named ${JSON.stringify(asked.job)}` });
    const { job, sampled, wouldComplete, wouldFail } = report;
    logger.info({ job, sampled, wouldComplete, wouldFail, from: request.socket.remoteAddress }, "dashboard: dry run");
    return json(200, report);
  } catch (error) {
    if (error instanceof UsageError) return json(400, { error: error.message, problems: error.lines });
    throw error;
  }
}

export function controlRoutes(controls: Controls | ReadOnly, logger: Logger): Route[] {
  return [
    {
      method: "GET",
      path: /^\/api\/jobs$/,
      answer: () => ("readOnlyBecause" in controls ? readOnly(controls) : json(200, { jobs: controls.jobs })),
    },
    {
      method: "POST",
      path: /^\/api\/runs$/,
      answer: (_, request) => controlled(controls, request, (c) => answerStart(c, logger, request)),
    },
    {
      method: "POST",
      path: /^\/api\/dry-runs$/,
      answer: (_, request) => controlled(controls, request, (c) => answerDryRun(c, logger, request)),
    },
    {
      method: "POST",
      path: /^\/api\/runs\/(\d{1,9})\/(pause|resume|cancel|retry)$/,
      answer: (params, request) => controlled(controls, request, (c) => answerSignal(c, logger, params, request)),
    },
  ];
}
