import os from "node:os";
import path from "node:path";
import type pg from "pg";
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage, requireWholeNumbers } from "../cli/args";
import { withCommandPool } from "../cli/command-pool";
import { runCommand } from "../cli/run-command";
import { UsageError } from "../src/base/command-error";
import { getConfig } from "../src/config/config";
import { getCatalog } from "../src/config/context";
import { DEFAULT_JOB } from "../src/jobs/catalog";
import type { JobDefinition } from "../src/jobs/define";
import { type GivenParams, paramsFromAssignments } from "../src/jobs/params";
import { DEFAULT_DRY_RUN_SAMPLE, renderDryRun } from "../src/processing/dry-run";
import { defaultBatchName } from "../src/runs/model";
import type { SubsetRequest } from "../src/runs/subset";
import { printResult } from "../src/terminal/output";
import {
  assertImported,
  DEFAULT_AS_OF,
  runDryRun,
  runEnqueue,
  runGenerate,
  runImport,
  runRoles,
  runSchema,
} from "./commands";
import { seedOrders } from "./orders";

const generateOptions = <T>(cmd: Argv<T>) =>
  cmd
    .option("rows", { type: "number", default: 1_000_000, describe: "users to generate" })
    .option("out", { type: "string", requiresArg: true, default: "data", describe: "directory for the CSV files" })
    .option("rows-per-file", {
      type: "number",
      default: 250_000,
      describe: "rows in each CSV file (files import in parallel)",
    })
    .option("seed", { type: "number", default: 1, describe: "the same seed writes byte-identical files" })
    .option("status-mix", {
      choices: ["pending", "original"] as const,
      default: "pending" as const,
      describe:
        "pending: every row waits to be processed; original: each row pending, completed, failed or cancelled at random, with a batch id",
    })
    .option("as-of", {
      type: "string",
      requiresArg: true,
      default: DEFAULT_AS_OF,
      describe: "created_at falls within the year before this date",
    })
    .option("threads", { type: "number", describe: "generator threads (default: one per core)" })
    .check((argv) => {
      requireWholeNumbers(argv, ["rows", "rows-per-file", "threads"]);
      requireWholeNumbers(argv, ["seed"], 0);
      if (Number.isNaN(Date.parse(argv["as-of"]))) throw new UsageError("--as-of must be a date, such as 2026-01-01");
      return true;
    });

const importOptions = <T>(cmd: Argv<T>) =>
  cmd
    .option("concurrency", {
      type: "number",
      default: Math.min(4, os.availableParallelism() * 2),
      describe: "files loaded at the same time",
    })
    .check((argv) => requireWholeNumbers(argv, ["concurrency"]));

const runOptions = <T>(cmd: Argv<T>) =>
  cmd
    .option("job", {
      type: "string",
      requiresArg: true,
      default: DEFAULT_JOB,
      describe: "the job to run (a file of jobs/; `npm run jobs -- list`)",
    })
    .option("batch-name", {
      type: "string",
      requiresArg: true,
      describe: "the run's name (default: JOB-batch); enqueueing a name that exists changes nothing",
    })
    .option("param", {
      type: "string",
      array: true,
      requiresArg: true,
      describe: "a parameter of the run, key=value (repeatable; `npm run jobs -- list` shows a job's)",
    })
    .option("params-json", {
      type: "string",
      requiresArg: true,
      describe: "the run's parameters as a JSON object (--param adds to them)",
    })
    .check((argv) => {
      const name = argv["batch-name"];
      if (name !== undefined && (typeof name !== "string" || name.trim() === "" || name.length > 255))
        throw new UsageError("--batch-name must be 1 to 255 characters");
      return true;
    });

/** A key of --from or --to: an integer of BIGINT's range. */
const keyOption = (name: string, value: unknown): bigint | undefined => {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const key = /^[+-]?\d+$/.test(text) ? BigInt(text) : undefined;
  if (key === undefined || key < -(2n ** 63n) || key > 2n ** 63n - 1n) {
    throw new UsageError(`--${name} must be an integer key, got ${JSON.stringify(value)}`);
  }
  return key;
};

/** The options that take a run over part of the job's rows: a key range, or a file's keys. */
const subsetOptions = <T>(cmd: Argv<T>) =>
  cmd
    .option("from", { type: "string", requiresArg: true, describe: "only rows of keys from this one on (inclusive)" })
    .option("to", { type: "string", requiresArg: true, describe: "only rows of keys up to this one (inclusive)" })
    .option("keys", {
      type: "string",
      requiresArg: true,
      describe: "only rows of the keys in this file: a key a line, or a header-less CSV's first column",
      conflicts: ["from", "to"],
    })
    .check((argv) => {
      const [from, to] = [keyOption("from", argv.from), keyOption("to", argv.to)];
      if (from !== undefined && to !== undefined && from > to)
        throw new UsageError(`--from ${from} is above --to ${to}`);
      return true;
    });

/** The subset the options ask for, if any. */
const subsetRequest = (args: { from?: string; to?: string; keys?: string }): SubsetRequest | undefined => {
  if (args.keys !== undefined) return { keysPath: path.resolve(args.keys) };
  if (args.from === undefined && args.to === undefined) return undefined;
  return { from: keyOption("from", args.from), to: keyOption("to", args.to) };
};

/** The job, run name and parameters a command's options give. */
const runTarget = (args: { job: string; "batch-name"?: string; param?: string[]; "params-json"?: string }) => {
  const job = getCatalog().get(args.job);
  return {
    job,
    batchName: args["batch-name"] ?? defaultBatchName(job.name),
    params: givenParams(job, args["params-json"], args.param ?? []),
  };
};

/** --params-json's object with --param's assignments over it; a usage error, a line a problem, otherwise. */
function givenParams(job: JobDefinition, json: string | undefined, assignments: string[]): GivenParams {
  let fromJson: unknown = {};
  if (json !== undefined) {
    try {
      fromJson = JSON.parse(json);
    } catch (error) {
      throw new UsageError(`--params-json is no JSON: ${(error as Error).message}`);
    }
    if (typeof fromJson !== "object" || fromJson === null || Array.isArray(fromJson)) {
      throw new UsageError('--params-json must be a JSON object, such as \'{"region":"eu"}\'');
    }
  }
  const { params, problems } = paramsFromAssignments(job.params, assignments);
  if (problems.length > 0) throw new UsageError(problems.join("; "), problems);
  return { ...(fromJson as GivenParams), ...params };
}

export async function main(argv: string[]): Promise<void> {
  const config = getConfig();
  await yargs(argv)
    .scriptName("seed")
    .usage("$0 <command> [options]\n\nLoads users into PostgreSQL and enqueues batch runs over them.")
    .command(
      "schema",
      "create or update the schema (this project's migrations and graphile-worker's)",
      (cmd) =>
        cmd.option("roles", {
          type: "boolean",
          default: false,
          describe: "the schema's owner first (sql/schema-owner.sql), the roles' grants after (sql/roles.sql)",
        }),
      async (args) => {
        await withCommandPool(
          "seed schema",
          2,
          async (pool) => printResult(await runSchema(pool, { roles: args.roles })),
          "connection",
          "session",
        );
      },
    )
    .command(
      "roles",
      "create the batch_admin, batch_worker, batch_monitor and batch_viewer roles and their grants (sql/roles.sql)",
      {},
      async () => {
        await withCommandPool("seed", 1, async (pool) => printResult(await runRoles(pool)));
      },
    )
    .command(
      "generate",
      "write reproducible fake users to CSV files",
      (cmd) => generateOptions(cmd),
      async (args) =>
        printResult(
          await runGenerate({
            ...args,
            rowsPerFile: args["rows-per-file"],
            statusMix: args["status-mix"],
            asOf: args["as-of"],
          }),
        ),
    )
    .command(
      "import",
      "COPY the CSV files of a directory into users (files imported before are skipped)",
      (cmd) =>
        importOptions(cmd).option("dir", {
          type: "string",
          requiresArg: true,
          default: "data",
          describe: "directory of CSV files",
        }),
      async (args) => {
        const result = await withCommandPool(
          "seed import",
          args.concurrency + 1,
          (pool) => runImport(pool, args.dir, args.concurrency, config),
          "schema",
          "session",
        );
        printResult(result);
        assertImported(result);
      },
    )
    .command(
      "orders",
      "load reproducible fake orders for the example job (jobs/orders-reprice.ts)",
      (cmd) =>
        cmd
          .option("rows", { type: "number", default: 100_000, describe: "orders to load" })
          .option("seed", { type: "number", default: 1, describe: "the same seed loads the same orders" })
          .option("first-id", { type: "number", default: 1, describe: "the first order_id" })
          .check((argv) => requireWholeNumbers(argv, ["rows", "first-id"])),
      async (args) => {
        const spec = { rows: args.rows, seed: args.seed, firstId: args["first-id"] };
        printResult(await withCommandPool("seed", 1, (pool) => seedOrders(pool, spec)));
      },
    )
    .command(
      "enqueue",
      "start a run of a job over its pending rows, planned at once: one chunk job per CHUNK_SIZE rows",
      (cmd) =>
        subsetOptions(runOptions(cmd))
          .option("dry-run", {
            type: "boolean",
            default: false,
            describe: "run the job's function on a sample of the rows a run would take; write nothing, start nothing",
          })
          .option("sample", {
            type: "number",
            default: DEFAULT_DRY_RUN_SAMPLE,
            describe: "with --dry-run: rows sampled, at evenly spaced keys",
          })
          .option("json", { type: "boolean", default: false, describe: "with --dry-run: the report as one JSON line" })
          .option("canary", {
            type: "number",
            describe:
              "process the first N rows (by key), then pause the run for a person to look; batch resume goes on",
          })
          .check((argv) => {
            if (argv["dry-run"] && argv.canary !== undefined)
              throw new UsageError("--canary starts a run: not with --dry-run");
            return requireWholeNumbers(argv, ["sample", "canary"]);
          }),
      async (args) => {
        const { job, batchName, params } = runTarget(args);
        const subset = subsetRequest(args);
        if (args["dry-run"]) {
          const report = await withCommandPool("seed", 2, (pool) =>
            runDryRun(pool, job, args.sample, config, params, subset),
          );
          if (args.json) printResult(report);
          else process.stdout.write(renderDryRun(report));
          return;
        }
        const enqueue = (pool: pg.Pool) =>
          runEnqueue(pool, job, batchName, config, params, config.podName, subset, args.canary);
        await withCommandPool("seed", 2, async (pool) => printResult(await enqueue(pool)));
      },
    )
    .command(
      "all",
      "schema, generate, import and enqueue in one go",
      (cmd) => runOptions(importOptions(generateOptions(cmd))),
      async (args) => {
        const { job, batchName, params } = runTarget(args);
        await withCommandPool(
          "seed all",
          args.concurrency + 1,
          async (pool) => {
            await runSchema(pool);
            const generated = await runGenerate({
              ...args,
              rowsPerFile: args["rows-per-file"],
              statusMix: args["status-mix"],
              asOf: args["as-of"],
            });
            const imported = await runImport(pool, path.resolve(args.out), args.concurrency, config);
            assertImported(imported);
            const enqueued = await runEnqueue(pool, job, batchName, config, params);
            printResult({ generated, imported, enqueued });
          },
          "connection",
          "session",
        );
      },
    )
    .demandCommand(1, "name a command")
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();
}

if (require.main === module) runCommand("seed", () => main(hideBin(process.argv)));
