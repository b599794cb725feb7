import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../src/base/logger";
import type { EmbeddedDatabase } from "../src/db/embedded";
import { formatCount } from "../src/terminal/format";
import { DeploymentController } from "./deployment-controller";
import { type Faults, tailValue } from "./faults";
import { JobController } from "./job-controller";
import type { Workload } from "./manifests";
import { PodRunner } from "./pods";
import type { SecretValues } from "./secrets";
import { Timeline, type TimelineTotals } from "./timeline";
import { TriggerQuery } from "./trigger";

/**
 * The local autoscaler's loop: every polling interval the trigger's query, KEDA's decision, and
 * the pods it asks for started (or, for a Deployment, stopped) as local processes; faults
 * injected on schedule; everything recorded in a timeline.
 */

export interface AutoscalerOptions {
  workload: Workload;
  secrets: SecretValues;
  /** Pod environment added or replaced (`--env`). */
  overrides: Record<string, string>;
  root: string;
  logDir: string;
  /** Stop once the query has read 0 this many polls in a row and no pod runs. */
  untilIdlePolls: number | undefined;
  durationSeconds: number | undefined;
  faults: Faults;
  /** The embedded database, which the faults may restart. */
  database: EmbeddedDatabase | undefined;
  signal: AbortSignal;
  logger: Logger;
}

export type StopReason = "idle" | "duration" | "signal";

export interface AutoscalerResult extends TimelineTotals {
  stoppedBecause: StopReason;
  durationSeconds: number;
}

interface Controller {
  poll(queue: number | undefined, now: number): Promise<{ started: number; stopped: number; replicas?: number }>;
  idle(): boolean;
  stop(): Promise<void>;
}

/** A query slower than this counts as failed (and a poll that waits for it is late). */
const MIN_QUERY_TIMEOUT_MS = 2000;

function killPods(runner: PodRunner, count?: number): number {
  const victims = runner.running().slice(0, count);
  for (const [, container] of victims) container.kill();
  return victims.length;
}

/** SIGKILL to every pod once the query falls below the tail's threshold with pods running: once. */
function tailKiller(options: AutoscalerOptions, runner: PodRunner, timeline: Timeline) {
  const threshold = options.faults.killAtTail;
  let startValue: number | undefined;
  let done = false;
  return (queue: number | undefined) => {
    if (!threshold || done || queue === undefined) return;
    if (queue > 0) startValue ??= queue;
    if (startValue === undefined || queue >= tailValue(threshold, startValue) || runner.running().length === 0) return;
    done = true;
    const killed = killPods(runner);
    options.logger.info({ fault: "kill-at-tail", killed, query: queue }, `fault: SIGKILL to every pod (${killed})`);
    timeline.fault(`SIGKILL ${killed} pod(s) at the tail`, killed);
  };
}

/**
 * The faults due at given times: pods killed, the embedded database stopped and started again.
 * Returns what cancels those not yet due and waits for a restart under way.
 */
function scheduleFaults(options: AutoscalerOptions, runner: PodRunner, timeline: Timeline) {
  const { faults, database, logger } = options;
  const restarts: Promise<void>[] = [];
  const restart = (db: EmbeddedDatabase) => {
    const down = faults.databaseDownSeconds;
    logger.info({ fault: "database-restart", down }, `fault: restarting the database (down for ${down} s)`);
    timeline.fault("database restart");
    restarts.push(
      db
        .shutdown("fast")
        .then(() => sleep(down * 1000))
        .then(() => db.start())
        .then(
          () => logger.info("the database is back"),
          (error: Error) => logger.error({ err: error }, "the database did not start again"),
        ),
    );
  };
  const timers = [
    ...faults.kills.map(({ count, at }) =>
      setTimeout(() => {
        const killed = killPods(runner, count);
        logger.info({ fault: "kill", killed }, `fault: SIGKILL to ${killed} pod(s)`);
        timeline.fault(`SIGKILL ${killed} pod(s)`, killed);
      }, at * 1000),
    ),
    ...faults.freezes.map(({ count, at }) =>
      setTimeout(() => {
        const victims = runner
          .running()
          .filter(([, container]) => container.started)
          .slice(0, count);
        for (const [, container] of victims) container.freeze(runner.tolerationSeconds);
        const names = victims.map(([pod]) => pod).join(", ");
        logger.info(
          { fault: "freeze", pods: names, tolerationSeconds: runner.tolerationSeconds },
          `fault: ${victims.length} pod(s) frozen as on a lost node (SIGSTOP): ${names}; evicted after ${runner.tolerationSeconds} s`,
        );
        timeline.fault(`froze ${victims.length} pod(s) (node lost)`);
      }, at * 1000),
    ),
    ...(database ? faults.databaseRestarts.map((at) => setTimeout(() => restart(database), at * 1000)) : []),
  ];
  return async () => {
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(restarts);
  };
}

export async function autoscale(options: AutoscalerOptions): Promise<AutoscalerResult> {
  const { workload, logger, signal } = options;
  const timeline = new Timeline();
  const runner = new PodRunner({
    template: workload.pod,
    namespace: workload.namespace,
    secrets: options.secrets,
    overrides: options.overrides,
    root: options.root,
    logDir: options.logDir,
    logger,
    events: {
      started: (pod, replacement) => timeline.podStarted(pod, replacement),
      exited: (pod, exit) => timeline.podExited(pod, exit),
    },
    pullDelaySeconds: options.faults.pullDelaySeconds,
    neverStart: options.faults.neverStart,
  });
  const controller: Controller =
    workload.kind === "ScaledJob"
      ? new JobController(workload, runner, logger)
      : new DeploymentController(workload, runner);
  const interval = workload.pollingIntervalSeconds;
  const trigger = new TriggerQuery(
    options.secrets(workload.trigger.connection),
    workload.trigger.query,
    Math.max(MIN_QUERY_TIMEOUT_MS, interval * 1000),
    logger,
  );
  const stopFaults = scheduleFaults(options, runner, timeline);
  const killAtTail = tailKiller(options, runner, timeline);
  // pods run in process groups of their own: should the autoscaler die, they must not outlive it
  const killAll = () => killPods(runner);
  process.on("exit", killAll);

  /** Waits for the poll due at `at`; says why not when it is not to happen. */
  const waitFor = async (at: number): Promise<StopReason | undefined> => {
    const deadline = options.durationSeconds ?? Number.POSITIVE_INFINITY;
    const wait = Math.min(at, deadline) - timeline.now();
    if (wait > 0) await sleep(wait * 1000, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return "signal";
    return timeline.now() >= deadline ? "duration" : undefined;
  };

  let stoppedBecause: StopReason | undefined;
  let idlePolls = 0;
  try {
    for (let n = 0; stoppedBecause === undefined; n++) {
      stoppedBecause = await waitFor(n * interval);
      if (stoppedBecause) break;
      const at = timeline.now();
      const reading = await trigger.read();
      const queue = "value" in reading ? reading.value : undefined;

      killAtTail(queue);
      const running = runner.running().length;
      const decision = await controller.poll(queue, at);
      const poll = timeline.record(
        { query: queue ?? null, ...("error" in reading ? { error: reading.error } : {}), running, ...decision },
        at,
      );
      logger.info(
        // the message says why a query failed (pino-pretty would spread an `error` field over lines)
        { ...poll, faults: undefined, error: undefined },
        `poll ${poll.t.toFixed(1)}s: query ${queue === undefined ? `failed (${poll.error})` : formatCount(queue)}, ` +
          `${running} pod(s) running, ${decision.started} started` +
          (decision.stopped ? `, ${decision.stopped} stopped` : "") +
          (poll.idle ? `, ${poll.idle} exited having done nothing` : ""),
      );

      idlePolls = queue === 0 && controller.idle() ? idlePolls + 1 : 0;
      if (options.untilIdlePolls !== undefined && idlePolls >= options.untilIdlePolls) stoppedBecause = "idle";
    }
  } finally {
    await controller.stop();
    await stopFaults();
    await trigger.close();
    process.off("exit", killAll);
  }
  return { ...timeline.totals(), stoppedBecause, durationSeconds: Math.round(timeline.now() * 10) / 10 };
}
