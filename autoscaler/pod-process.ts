import { type ChildProcess, spawn } from "node:child_process";
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
  /** The pod's conditions when it ended: DisruptionTarget where it was evicted (a lost node). */
  conditions: string[];
  /** Its process ran: false for a pod whose image never came. */
  ran: boolean;
  seconds: number;
}

/** When the container's process starts: after pulling its image, or never (ImagePullBackOff). */
export type ContainerStart = { afterSeconds: number } | "never";

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
  private running = false;
  private stopping = false;
  private evicted = false;
  private lastError: string | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private child: ChildProcess | undefined;
  private readonly ended: Promise<[number | null, NodeJS.Signals | null]>;
  private endPending: ((end: [number | null, NodeJS.Signals | null]) => void) | undefined;
  private pullTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly spec: ProcessSpec,
    private readonly logFile: string,
    start: ContainerStart = { afterSeconds: 0 },
  ) {
    const started = performance.now();
    // the pod's log exists from its creation, empty while its container has not started
    fs.closeSync(fs.openSync(logFile, "a"));
    // a pod whose container has not started ends, when deleted, without a status of its own
    this.ended = new Promise((resolve) => {
      this.endPending = resolve;
    });
    if (start !== "never") {
      if (start.afterSeconds > 0) this.pullTimer = setTimeout(() => this.spawn(), start.afterSeconds * 1000);
      else this.spawn();
    }
    this.exited = this.ended.then(([code, signal]) => {
      this.running = false;
      clearTimeout(this.killTimer);
      return {
        code,
        signal,
        jobs: this.jobs,
        lastError: this.lastError,
        stopped: this.stopping,
        conditions: this.evicted ? ["DisruptionTarget"] : [],
        ran: this.child !== undefined,
        seconds: (performance.now() - started) / 1000,
      };
    });
  }

  private spawn(): void {
    this.pullTimer = undefined;
    const log = fs.createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(this.spec.executable, this.spec.args, {
      cwd: this.spec.cwd,
      env: this.spec.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    this.running = true;
    const readers = [child.stdout, child.stderr].map((stream) => {
      const lines = readline.createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      lines.on("line", (line) => {
        log.write(`${line}\n`);
        this.read(line);
      });
      return once(lines, "close");
    });
    void Promise.all([
      once(child, "exit").catch((error: Error) => {
        // it could not be started at all (no such command): as a container that exits at once
        this.lastError = error.message;
        return [127, null];
      }),
      ...readers,
    ]).then(async ([[code, signal]]) => {
      await new Promise((resolve) => log.end(resolve));
      this.endPending?.([code as number | null, signal as NodeJS.Signals | null]);
    });
  }

  /** Ends a pod whose process never started: its Job sees it gone (deleted, or failed by a deadline). */
  private endUnstarted(signal: NodeJS.Signals): void {
    clearTimeout(this.pullTimer);
    this.pullTimer = undefined;
    this.endPending?.([null, signal]);
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
    if (this.stopping) return;
    this.stopping = true;
    if (!this.child) this.endUnstarted("SIGTERM");
    else if (this.running) {
      this.child.kill("SIGTERM");
      this.killTimer = setTimeout(() => this.kill(), graceSeconds * 1000);
    }
  }

  kill(): void {
    if (!this.child) this.endUnstarted("SIGKILL");
    else if (this.running) this.child.kill("SIGKILL");
  }

  /**
   * Its node stops answering: the process is stopped (SIGSTOP), its connections left open, as
   * on a node cut off. After `tolerationSeconds` the pod is evicted: SIGKILL (the kubelet of a
   * lost node stops nothing; the pod is deleted), with the condition DisruptionTarget.
   */
  freeze(tolerationSeconds: number): void {
    if (!this.child || !this.running) return;
    this.child.kill("SIGSTOP");
    this.killTimer = setTimeout(() => {
      this.evicted = true;
      this.kill();
    }, tolerationSeconds * 1000);
  }

  /** Its process started and has not ended. */
  get started(): boolean {
    return this.child !== undefined && this.running;
  }
}
