import type http from "node:http";
import os from "node:os";
import { CommandError } from "../src/base/command-error";
import type { Logger } from "../src/base/logger";
import { carriesToken } from "./access";
import { json, type Reply, type Route } from "./routes";

/**
 * Pause, resume, cancel and retry, for requests that carry the access token (`Authorization: Bearer`).
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

export interface Controls {
  token: string;
  send: SendSignal;
}

/** A dashboard without controls, and why: its control endpoints answer 404 saying so. */
export interface ReadOnly {
  readOnlyBecause: string;
}

async function answer(
  controls: Controls | ReadOnly,
  logger: Logger,
  [id, signal]: string[],
  request: http.IncomingMessage,
): Promise<Reply> {
  if ("readOnlyBecause" in controls) {
    return json(404, { error: `this dashboard is read-only: ${controls.readOnlyBecause}` });
  }
  if (!carriesToken(request, controls.token)) return json(403, { error: "a valid access token is needed" });
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

export function controlRoutes(controls: Controls | ReadOnly, logger: Logger): Route[] {
  return [
    {
      method: "POST",
      path: /^\/api\/runs\/(\d{1,9})\/(pause|resume|cancel|retry)$/,
      answer: (params, request) => answer(controls, logger, params, request),
    },
  ];
}
