import { setTimeout as sleep } from "node:timers/promises";
import { type Finished, type Running, startWorker } from "./processes";

/** How long a supervisor waits before starting an exited worker again (Kubernetes: 10 s and up). */
const RESTART_DELAY_MS = 1000;

/**
 * A long-running worker under a supervisor, as in a Deployment or with compose's
 * `restart: on-failure`: whenever it exits with a non-zero status it is started again.
 */
export interface SupervisedWorker {
  /** The running incarnation. */
  current(): Running;
  /** Every exit so far, in order. */
  exits: Finished[];
  /** The stderr of every incarnation, for a failure message. */
  log(): string;
  stop(): Promise<void>;
}

export function superviseWorker(env: Record<string, string | undefined>): SupervisedWorker {
  const exits: Finished[] = [];
  const logs: Running["output"][] = [];
  let stopping = false;
  let running: Running;

  const launch = () => {
    running = startWorker([], env);
    logs.push(running.output);
    void running.exited.then(async (exit) => {
      exits.push(exit);
      if (stopping || exit.code === 0) return;
      await sleep(RESTART_DELAY_MS);
      if (!stopping) launch();
    });
  };
  launch();

  return {
    current: () => running,
    exits,
    log: () => logs.map((output, i) => `--- worker #${i + 1}\n${output.stderr}`).join("\n"),
    async stop() {
      stopping = true;
      running.child.kill("SIGTERM");
      await running.exited;
    },
  };
}
