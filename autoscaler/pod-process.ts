import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import readline from "node:readline";
import type { ProcessSpec } from "./pod-spec";

/** How one run of a pod's container ended. */
export interface ContainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Jobs the container started: graphile-worker's "Found task" lines. */
  jobs: number;
  /** The last error line it wrote, to say why it failed. */
  lastError: string | undefined;
  /** It was asked to stop (scale-in, the autoscaler's end), not killed by a fault or ended by itself. */
  stopped: boolean;
  seconds: number;
}

/** graphile-worker's debug line for every job it takes, written before the task runs. */
const JOB_START = /^Found task \d+ \(/;
const ERROR_LEVEL = 50;

/**
 * One run of a pod's container, as a local process: its output appended to the pod's log file
 * (`kubectl logs`), its job starts counted from it. It runs in a process group of its own, so a
 * Ctrl-C at the autoscaler's terminal reaches the autoscaler only, which stops pods as
 * Kubernetes would.
 */
export class Container {
  jobs = 0;
  readonly exited: Promise<ContainerExit>;
  private running = true;
  private stopping = false;
  private lastError: string | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly child;

  constructor(spec: ProcessSpec, logFile: string) {
    const started = performance.now();
    const log = fs.createWriteStream(logFile, { flags: "a" });
    this.child = spawn(spec.executable, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const readers = [this.child.stdout, this.child.stderr].map((stream) => {
      const lines = readline.createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on("line", (line) => {
        log.write(`${line}\n`);
        this.read(line);
      });
      return once(lines, "close");
    });
    this.exited = Promise.all([
      once(this.child, "exit").catch((error: Error) => {
        // it could not be started at all (no such command): as a container that exits at once
        this.lastError = error.message;
        return [127, null];
      }),
      ...readers,
    ]).then(async ([[code, signal]]) => {
      this.running = false;
      clearTimeout(this.killTimer);
      await new Promise((resolve) => log.end(resolve));
      return {
        code: code as number | null,
        signal: signal as NodeJS.Signals | null,
        jobs: this.jobs,
        lastError: this.lastError,
        stopped: this.stopping,
        seconds: (performance.now() - started) / 1000,
      };
    });
  }

  get alive(): boolean {
    return this.running;
  }

  private read(line: string): void {
    if (!line.startsWith("{")) {
      if (line.trim()) this.lastError = line.trim();
      return;
    }
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      if (JOB_START.test(entry.msg ?? "")) this.jobs++;
      else if ((entry.level ?? 0) >= ERROR_LEVEL) this.lastError = entry.msg;
    } catch {
      this.lastError = line;
    }
  }

  /** As the kubelet stops a container: SIGTERM, then SIGKILL once the grace period is over. */
  terminate(graceSeconds: number): void {
    if (!this.running || this.stopping) return;
    this.stopping = true;
    this.child.kill("SIGTERM");
    this.killTimer = setTimeout(() => this.kill(), graceSeconds * 1000);
  }

  kill(): void {
    if (this.running) this.child.kill("SIGKILL");
  }
}
