import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage, requireWholeNumbers } from "../cli/args";
import { runCommand } from "../cli/run-command";
import { CommandError, UsageError } from "../src/base/command-error";
import { PROJECT_ROOT } from "../src/base/paths";
import { getConfig } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../src/db/embedded";
import { DEFAULT_JOB } from "../src/jobs/catalog";
import { defaultBatchName } from "../src/runs/model";
import { printResult } from "../src/terminal/output";
import { autoscale } from "./autoscaler";
import { renderChart } from "./chart";
import { readRuns, seedDatabase } from "./database";
import { type Faults, parsePodsAt, parseTailThreshold } from "./faults";
import { ManifestError, readWorkload, renderOverlay, type Workload } from "./manifests";
import { type SecretValues, secretValue, secretValues } from "./secrets";

/**
 * `npm run autoscale -- <overlay>`: the overlay's KEDA ScaledJob (or ScaledObject and Deployment)
 * run locally, as KEDA and Kubernetes would run it, with its pods as local processes. Logs go to
 * stderr, with the timeline as a chart at the end on a terminal; the last line on stdout is the
 * summary as JSON. A development tool: it needs the devDependencies (yaml), and the image leaves it out.
 */

function parsePairs(pairs: string[], option: string): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(pair);
      if (!match) throw new UsageError(`--${option} takes KEY=VALUE; got ${pair}`);
      return [match[1], match[2]];
    }),
  );
}

interface Overrides {
  pollingInterval?: number;
  maxReplicas?: number;
  /** The ScaledJob's activeDeadlineSeconds, shortened so that a test sees a stuck pod's Job fail. */
  activeDeadline?: number;
  /** The pods' unreachable toleration, shortened so that a test sees a frozen pod evicted. */
  tolerationSeconds?: number;
}

/** The manifest's times and bounds, replaced where an option gives one (each option says so in --help). */
function withOverrides<W extends Workload>(workload: W, overrides: Overrides): W {
  const replaced = {
    ...workload,
    pollingIntervalSeconds: overrides.pollingInterval ?? workload.pollingIntervalSeconds,
    scaling: { ...workload.scaling, maxReplicas: overrides.maxReplicas ?? workload.scaling.maxReplicas },
    pod: {
      ...workload.pod,
      unreachableTolerationSeconds: overrides.tolerationSeconds ?? workload.pod.unreachableTolerationSeconds,
    },
  };
  if (replaced.kind === "ScaledJob" && overrides.activeDeadline !== undefined) {
    return { ...replaced, activeDeadlineSeconds: overrides.activeDeadline };
  }
  return replaced;
}

/** Every Secret key the workload reads must have a value before anything starts. */
function checkSecrets(workload: Workload, secrets: SecretValues): void {
  try {
    secrets(workload.trigger.connection);
    for (const { from } of workload.pod.env) if ("secret" in from) secretValue(secrets, from.secret);
  } catch (error) {
    throw new CommandError((error as Error).message);
  }
}

/** The pod template's plain values and the overrides: the settings a run is enqueued with. */
function podSettings(workload: Workload, overrides: Record<string, string>): Record<string, string> {
  const values = workload.pod.env.flatMap(({ name, from }) => ("value" in from ? [[name, from.value]] : []));
  return { ...Object.fromEntries(values), ...overrides };
}

/** The TLS mode the pods connect with (PGSSLMODE of their template or --env); undefined for none. */
function podsTlsMode(workload: Workload, overrides: Record<string, string>): string | undefined {
  const mode = podSettings(workload, overrides).PGSSLMODE;
  return mode && mode !== "disable" ? mode : undefined;
}

async function main(): Promise<void> {
  const logger = getLogger();
  const args = await yargs(hideBin(process.argv))
    .scriptName("npm run autoscale --")
    .usage(
      "$0 <overlay> [options]\n\n" +
        "Runs an overlay's KEDA ScaledJob (or ScaledObject) locally: polls its query, starts its pods as local " +
        "processes as KEDA and Kubernetes would, and reports a timeline (the overlay rendered with kubectl kustomize).",
    )
    .command("$0 <overlay>", false, (cmd) =>
      cmd.positional("overlay", { type: "string", demandOption: true, describe: "the overlay directory" }),
    )
    .option("secret", {
      type: "string",
      array: true,
      default: [] as string[],
      describe: "NAME/KEY=VALUE: a Secret key's value (default: DATABASE_URL for every key of pg-secret)",
    })
    .option("env", {
      type: "string",
      array: true,
      default: [] as string[],
      describe: "KEY=VALUE added to the pods' environment (LOG_LEVEL and LOG_FORMAT are the autoscaler's)",
    })
    .option("polling-interval", { type: "number", describe: "seconds between polls (fractions allowed)" })
    .option("max-replicas", { type: "number", describe: "maxReplicaCount instead of the manifest's" })
    .option("until-idle", {
      type: "number",
      describe: "stop once the query reads 0 for N polls and no pod runs (N polls longer than any retry delay)",
    })
    .option("duration", { type: "number", describe: "stop after this many seconds (pods get SIGTERM)" })
    .option("kill", {
      type: "string",
      array: true,
      default: [] as string[],
      describe: "N@T: SIGKILL N running pods T seconds after the start",
    })
    .option("kill-at-tail", {
      type: "string",
      describe: "SIGKILL every running pod once the query falls below a share of its start (30%) or a value",
    })
    .option("pull-delay", {
      type: "number",
      default: 0,
      describe: "fault: seconds each pod waits for its image before its process starts",
    })
    .option("never-start", {
      type: "number",
      describe:
        "fault: the first N pods never start (ImagePullBackOff): their Jobs count as running until activeDeadlineSeconds fails them",
    })
    .option("freeze", {
      type: "string",
      array: true,
      default: [] as string[],
      describe:
        "fault: N@T: N running pods' node is lost T seconds after the start: SIGSTOP, then evicted (SIGKILL, DisruptionTarget) after their unreachable toleration",
    })
    .option("active-deadline", {
      type: "number",
      describe:
        "the ScaledJob's activeDeadlineSeconds instead of the manifest's (seconds: to see a stuck pod's Job fail)",
    })
    .option("toleration-seconds", {
      type: "number",
      describe: "the pods' unreachable tolerationSeconds instead of the manifest's (to see a frozen pod evicted)",
    })
    .option("embedded", {
      type: "boolean",
      default: false,
      describe:
        "start an embedded PostgreSQL for every Secret key, seeded with --rows and a batch run; with TLS (a CA made at its start) where the pods set PGSSLMODE",
    })
    .option("rows", { type: "number", default: 100_000, describe: "with --embedded: users to seed" })
    .option("batch-name", {
      type: "string",
      default: defaultBatchName(DEFAULT_JOB),
      describe: "with --embedded: the batch run to enqueue",
    })
    .option("restart-database-at", {
      type: "number",
      array: true,
      default: [] as number[],
      describe: "with --embedded: restart the database T seconds after the start",
    })
    .option("database-down-for", {
      type: "number",
      default: 0,
      describe: "seconds the database stays down at each restart",
    })
    .option("pod-logs", { type: "string", describe: "directory for the pods' logs (default: a temporary one)" })
    .check((argv) => {
      requireWholeNumbers(argv, ["max-replicas", "until-idle", "rows", "never-start"]);
      for (const name of ["polling-interval", "duration", "active-deadline", "toleration-seconds"]) {
        const value = argv[name];
        if (value !== undefined && !((value as number) > 0)) throw new UsageError(`--${name} must be above 0`);
      }
      if (argv["restart-database-at"].length > 0 && !argv.embedded) {
        throw new UsageError("--restart-database-at needs --embedded: the autoscaler restarts only its own database");
      }
      return true;
    })
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();

  let faults: Faults;
  let overrides: Record<string, string>;
  try {
    faults = {
      kills: args.kill.map((text) => parsePodsAt(text)),
      killAtTail: args["kill-at-tail"] === undefined ? undefined : parseTailThreshold(args["kill-at-tail"]),
      databaseRestarts: args["restart-database-at"],
      databaseDownSeconds: args["database-down-for"],
      pullDelaySeconds: args["pull-delay"],
      neverStart: args["never-start"] ?? 0,
      freezes: args.freeze.map((text) => parsePodsAt(text, "--freeze")),
    };
    overrides = parsePairs(args.env, "env");
  } catch (error) {
    failOnUsage((error as Error).message, undefined);
  }

  const overlay = args.overlay as string;
  let workload: Workload;
  try {
    workload = withOverrides(readWorkload(renderOverlay(overlay)), {
      pollingInterval: args["polling-interval"],
      maxReplicas: args["max-replicas"],
      activeDeadline: args["active-deadline"],
      tolerationSeconds: args["toleration-seconds"],
    });
  } catch (error) {
    if (error instanceof ManifestError) throw new CommandError(error.message);
    throw error;
  }

  let database: EmbeddedDatabase | undefined;
  try {
    if (args.embedded) {
      const tlsMode = podsTlsMode(workload, overrides);
      database = await startEmbeddedPostgres(logger, { tls: tlsMode !== undefined });
      if (database.caFile) {
        // the file the pods' PGSSLROOTCERT names is a mount of a CA in the cluster: here, the server's CA
        overrides = { PGSSLROOTCERT: database.caFile, ...overrides };
        logger.info(
          { caFile: database.caFile },
          `the pods ask for TLS (PGSSLMODE=${tlsMode}): the embedded PostgreSQL accepts TLS connections only, ` +
            `with a certificate of a CA made at its start; every Secret key's URL says sslmode=verify-full and ` +
            `sslrootcert=${database.caFile}, which is the pods' PGSSLROOTCERT too`,
        );
      }
      const env = podSettings(workload, overrides);
      await seedDatabase({ url: database.url, rows: args.rows, batchName: args["batch-name"], env, logger });
    }
    const secrets = secretValues({ given: args.secret, everyKey: database?.url, databaseUrl: getConfig().databaseUrl });
    checkSecrets(workload, secrets);
    const logDir = args["pod-logs"] ?? (await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-pods-")));
    await fs.mkdir(logDir, { recursive: true });
    logger.info(
      { kind: workload.kind, name: workload.name, pollingInterval: workload.pollingIntervalSeconds, podLogs: logDir },
      `autoscaling ${workload.kind} ${workload.name} of ${overlay}: "${workload.trigger.query}" every ` +
        `${workload.pollingIntervalSeconds} s, target ${workload.scaling.target}, at most ` +
        `${workload.scaling.maxReplicas} pods; pod logs in ${logDir}`,
    );

    const stop = new AbortController();
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => stop.abort());
    const result = await autoscale({
      workload,
      secrets,
      overrides,
      root: PROJECT_ROOT,
      logDir,
      untilIdlePolls: args["until-idle"],
      durationSeconds: args.duration,
      faults,
      database,
      signal: stop.signal,
      logger,
    });
    const summary = {
      overlay,
      kind: workload.kind,
      name: workload.name,
      pollingIntervalSeconds: workload.pollingIntervalSeconds,
      stoppedBecause: result.stoppedBecause,
      durationSeconds: result.durationSeconds,
      podsStarted: result.podsStarted,
      podsIdle: result.podsIdle,
      podsFailed: result.podsFailed,
      podsKilled: result.podsKilled,
      maxPods: result.maxPods,
      finalQueryValue: result.finalQueryValue,
      podLogs: logDir,
      ...(database ? { runs: await readRuns(database.url) } : {}),
      pods: result.pods,
      timeline: result.timeline,
    };
    if (process.stderr.isTTY) {
      const title = `${workload.kind} ${workload.name}: "${workload.trigger.query}" every ${workload.pollingIntervalSeconds} s`;
      process.stderr.write(
        `\n${renderChart(result.timeline, title)}\n` +
          `${summary.podsStarted} pods started, ${summary.podsIdle} exited having done nothing, ` +
          `${summary.podsFailed} failed, at most ${summary.maxPods} at once; ${summary.durationSeconds} s; ` +
          `query at the end: ${summary.finalQueryValue ?? "failed"}\n`,
      );
    }
    printResult(summary);
  } finally {
    await database?.stop();
  }
}

runCommand("autoscale", main);
