import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../../src/base/free-port";
import { waitFor } from "./runs";

export const ROOT = path.resolve(__dirname, "../..");
export const SEED_CLI = path.join(ROOT, "dist/seed/cli.js");
export const MAIN = path.join(ROOT, "dist/app/main.js");
export const BATCH_CLI = path.join(ROOT, "dist/cli/batch.js");
export const STATUS_CLI = path.join(ROOT, "dist/cli/status.js");
/** The worker command the docs and the container image use (npx adds only a launcher). */
export const WORKER_BIN = path.join(ROOT, "node_modules/.bin/graphile-worker");

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a child: this process's, without any database or tuning variables. */
export function childEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  // no metrics server unless a test asks: processes run side by side
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "info", METRICS_PORT: "0" };
  for (const key of [
    "DATABASE_URL",
    "PG_DSN",
    "DATABASE_POOLING",
    "WORKER_DIRECT_DATABASE_URL",
    "TEST_ADMIN_DATABASE_URL",
  ])
    delete env[key];
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export interface Running {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exited: Promise<Finished>;
}

export function start(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  options: { detached?: boolean; cwd?: string } = {},
): Running {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (chunk: Buffer) => {
    output.stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  const exited = once(child, "close").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    ...output,
  }));
  return { child, output, exited };
}

export function run(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  cwd?: string,
): Promise<Finished> {
  return start(command, args, env, { cwd }).exited;
}

export function seed(args: string[], env: Record<string, string | undefined>): Promise<Finished> {
  return run(process.execPath, [SEED_CLI, ...args], env);
}

export function batch(args: string[], env: Record<string, string | undefined>): Promise<Finished> {
  return run(process.execPath, [BATCH_CLI, ...args], env);
}

export function status(args: string[], env: Record<string, string | undefined>): Promise<Finished> {
  return run(process.execPath, [STATUS_CLI, ...args], env);
}

/** graphile-worker, as docs/operations.md runs it (the configuration found from the project root), as a separate process. */
export function startWorker(args: string[], env: Record<string, string | undefined>): Running {
  return start(WORKER_BIN, args, env);
}

/** Stops the processes a test started, all at once (a stopped one is continued first), and waits for them. */
export async function stopAll(processes: Running[], signal: NodeJS.Signals): Promise<void> {
  await Promise.all(
    processes.splice(0).map(({ child, exited }) => {
      child.kill("SIGCONT");
      child.kill(signal);
      return exited;
    }),
  );
}

/**
 * Waits until a server started by `start` answers (`answers`), failing at once with its stderr
 * if it exits first. Resolves with its stop: SIGTERM unless it has exited, then its exit.
 */
export async function untilAnswering(
  server: Running,
  name: string,
  answers: () => Promise<boolean>,
): Promise<() => Promise<void>> {
  let exited = false;
  void server.exited.then(() => {
    exited = true;
  });
  await waitFor(`${name} to answer`, async () => {
    if (exited) throw new Error(`${name} exited: ${server.output.stderr}`);
    return answers();
  });
  return async () => {
    if (!exited) server.child.kill("SIGTERM");
    await server.exited;
  };
}

/** SIGTERMs a worker and waits up to `waitMs` for it to exit: undefined if it did not. */
export function terminate(worker: Running, waitMs: number): Promise<Finished | undefined> {
  worker.child.kill("SIGTERM");
  return Promise.race([worker.exited, sleep(waitMs, undefined, { ref: false })]);
}

/**
 * Starts a worker serving metrics on a port of its own (kept in `workers` for stopAll), and waits
 * until it serves them: its job pool is about to start. Resolves with its /metrics text reader.
 */
export async function startMeasuredWorker(
  env: Record<string, string | undefined>,
  workers: Running[],
  timeoutMs: number,
): Promise<() => Promise<string>> {
  const port = await freePort();
  workers.push(startWorker([], { ...env, METRICS_PORT: String(port) }));
  const metrics = async () => {
    try {
      return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    } catch {
      return ""; // not serving yet
    }
  };
  await waitFor("the worker to serve its metrics", async () => (await metrics()) !== "", timeoutMs);
  return metrics;
}

/** The non-empty lines of a process's stderr. */
export function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() !== "");
}

/** Parses the JSON log lines of a process's stderr, skipping anything else. */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1] ?? "{}") as Record<string, unknown>;
}
