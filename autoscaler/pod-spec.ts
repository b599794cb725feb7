import fs from "node:fs";
import path from "node:path";
import { freePort } from "../src/base/free-port";
import type { PodTemplate } from "./manifests";
import { type SecretValues, secretValue } from "./secrets";

/**
 * A pod of the template as a local process: its container's command resolved against the
 * project (the image's WORKDIR holds the same files and puts node_modules/.bin on PATH), its
 * environment as the kubelet gives it.
 */

export interface ProcessSpec {
  executable: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

/**
 * Pods log at debug level, as JSON lines: the autoscaler reads graphile-worker's "Found task"
 * lines from them to tell a pod that ran jobs from one that did nothing.
 */
export const POD_LOGGING = { LOG_LEVEL: "debug", LOG_FORMAT: "json" };

function resolveExecutable(command: string, root: string): string {
  if (command.includes("/")) return path.resolve(root, command);
  const local = path.join(root, "node_modules", ".bin", command);
  return fs.existsSync(local) ? local : command;
}

/**
 * The command without its init (`tini --`), which a container needs as PID 1 to pass signals on
 * and exit with its child's status; a local process is not PID 1, and runs the command itself.
 */
function withoutInit(command: string[]): [string, ...string[]] {
  const rest = command[0] === "tini" && command[1] === "--" ? command.slice(2) : command;
  return rest as [string, ...string[]];
}

function fieldValue(fieldPath: string, podName: string, namespace: string): string {
  if (fieldPath === "metadata.name") return podName;
  if (fieldPath === "metadata.namespace") return namespace;
  if (fieldPath === "status.podIP" || fieldPath === "status.hostIP") return "127.0.0.1";
  throw new Error(`fieldRef ${fieldPath} is not supported by the local autoscaler`);
}

export async function processSpec(options: {
  template: PodTemplate;
  podName: string;
  namespace: string;
  secrets: SecretValues;
  /** `--env`: added to or replacing the template's variables. */
  overrides: Record<string, string>;
  root: string;
}): Promise<ProcessSpec> {
  const { template, podName, root } = options;
  const env: Record<string, string> = {
    PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH ?? ""}`,
    HOME: process.env.HOME ?? "/tmp",
    // as the image sets it, and the kubelet sets HOSTNAME to the pod's name
    NODE_ENV: "production",
    HOSTNAME: podName,
  };
  for (const { name, from } of template.env) {
    if ("value" in from) env[name] = from.value;
    else if ("secret" in from) {
      const value = secretValue(options.secrets, from.secret);
      if (value !== undefined) env[name] = value;
    } else env[name] = fieldValue(from.field, podName, options.namespace);
  }
  Object.assign(env, options.overrides, POD_LOGGING);
  // Each pod has a network namespace of its own in a cluster; here they share the host's, so a
  // variable naming a container port (METRICS_PORT) gets a free port of its own.
  for (const [name, value] of Object.entries(env)) {
    if (value !== "0" && template.containerPorts.includes(Number(value))) env[name] = String(await freePort());
  }
  const [command, ...args] = withoutInit(template.command);
  return { executable: resolveExecutable(command, root), args, env, cwd: root };
}
