import { randomInt } from "node:crypto";
import path from "node:path";
import type { Logger } from "../src/base/logger";
import type { PodTemplate } from "./manifests";
import { Container, type ContainerExit, type ContainerStart } from "./pod-process";
import { processSpec } from "./pod-spec";
import type { SecretValues } from "./secrets";

/** The characters of Kubernetes' generated name suffixes (no vowels, no look-alikes). */
const NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/** A generated name: `prefix-` and `length` random characters, as generateName makes them. */
export function generateName(prefix: string, length = 5): string {
  let suffix = "";
  for (let i = 0; i < length; i++) suffix += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)];
  return `${prefix}-${suffix}`;
}

/**
 * Kubernetes' back-off before another try after a failure: 10 s doubling at each failure, up to
 * `maxSeconds` (a Job's pods: 6 minutes; a container's restarts, CrashLoopBackOff: 5 minutes).
 */
export function backoffSeconds(failures: number, maxSeconds: number): number {
  return Math.min(10 * 2 ** (failures - 1), maxSeconds);
}

export interface PodEvents {
  /** `replacement`: started by the Job controller or the kubelet in place of one that ended, not by scaling. */
  started(pod: string, replacement: boolean): void;
  exited(pod: string, exit: ContainerExit): void;
}

/** Starts the containers of the template's pods, each logging to `<logDir>/<pod>.log`. */
export class PodRunner {
  private readonly live = new Map<string, Container>();

  constructor(
    private readonly options: {
      template: PodTemplate;
      namespace: string;
      secrets: SecretValues;
      overrides: Record<string, string>;
      root: string;
      logDir: string;
      logger: Logger;
      events: PodEvents;
      /** Seconds a pod waits for its image before its process starts. */
      pullDelaySeconds: number;
      /** How many of the next pods never start (their image never pulls). */
      neverStart: number;
    },
  ) {}

  get graceSeconds(): number {
    return this.options.template.terminationGracePeriodSeconds;
  }

  async start(pod: string, replacement = false): Promise<Container> {
    const spec = await processSpec({ ...this.options, podName: pod });
    let start: ContainerStart = { afterSeconds: this.options.pullDelaySeconds };
    if (this.options.neverStart > 0) {
      this.options.neverStart--;
      start = "never";
      this.options.logger.info({ pod, fault: "never-start" }, `fault: pod ${pod} never starts (ImagePullBackOff)`);
    }
    const container = new Container(spec, path.join(this.options.logDir, `${pod}.log`), start);
    this.live.set(pod, container);
    this.options.logger.debug({ pod, replacement }, "pod started");
    this.options.events.started(pod, replacement);
    void container.exited.then((exit) => {
      this.live.delete(pod);
      const how = exit.signal ?? `status ${exit.code}`;
      this.options.logger[exit.code === 0 ? "debug" : "info"](
        { pod, exit: how, jobs: exit.jobs, seconds: Math.round(exit.seconds * 10) / 10, lastError: exit.lastError },
        `pod ${pod} exited (${how}) after ${exit.jobs} job(s)`,
      );
      this.options.events.exited(pod, exit);
    });
    return container;
  }

  /** The pods not ended, the oldest first, those whose process has not started included. */
  running(): [string, Container][] {
    return [...this.live.entries()];
  }

  get tolerationSeconds(): number {
    return this.options.template.unreachableTolerationSeconds;
  }
}
