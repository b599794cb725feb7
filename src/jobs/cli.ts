import fs from "node:fs";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage } from "../cli-args";
import { printResult, runCommand, table } from "../cli-output";
import { withCommandPool } from "../command-pool";
import { MIGRATIONS_DIR } from "../paths";
import { getCatalog } from "./catalog";
import { assertJobsFitDatabase } from "./catalog-check";
import { stateMigrationSql } from "./state-migration";

/** The next free number of sql/migrations, three digits as the others. */
function nextMigrationFile(job: string): string {
  const versions = fs
    .readdirSync(MIGRATIONS_DIR)
    .map((file) => Number.parseInt(file, 10))
    .filter(Number.isFinite);
  const next = String(Math.max(0, ...versions) + 1).padStart(3, "0");
  return path.join(MIGRATIONS_DIR, `${next}_job_${job.replaceAll("-", "_")}.sql`);
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("jobs")
    .usage(
      "$0 <command> [options]\n\nThe jobs of jobs/: list them, check them against the database, write their migration.",
    )
    .command("list", "the jobs this deployment runs", {}, () => {
      const rows = getCatalog().jobs.map((job) => [
        job.name,
        `${job.schema}.${job.table}`,
        job.key,
        String(job.defaults.chunkSize),
        job.description,
      ]);
      process.stdout.write(`${table(["JOB", "TABLE", "KEY", "CHUNK", "DESCRIPTION"], rows)}\n`);
    })
    .command(
      "check [job]",
      "check the jobs (or one) against the database's tables: one line per mismatch",
      (cmd) => cmd.positional("job", { type: "string", describe: "one job's name" }),
      async (args) => {
        const catalog = getCatalog();
        const jobs = args.job ? [catalog.get(args.job)] : catalog.jobs;
        await withCommandPool("jobs", 1, (pool) =>
          pool.connect().then(async (client) => {
            try {
              await assertJobsFitDatabase(client, jobs);
            } finally {
              client.release();
            }
          }),
        );
        printResult({ checked: jobs.map((job) => job.name) });
      },
    )
    .command(
      "migration <job>",
      "write the migration that adds the job's state and result columns to its table",
      (cmd) =>
        cmd.positional("job", { type: "string", demandOption: true, describe: "the job's name" }).option("stdout", {
          type: "boolean",
          default: false,
          describe: "print it instead of writing sql/migrations/",
        }),
      (args) => {
        const sql = stateMigrationSql(getCatalog().get(args.job));
        if (args.stdout) {
          process.stdout.write(sql);
          return;
        }
        const file = nextMigrationFile(args.job);
        fs.writeFileSync(file, sql, { flag: "wx" });
        printResult({ written: path.relative(process.cwd(), file), apply: "npm run seed -- schema" });
      },
    )
    .demandCommand(1, "name a command")
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();
}

if (require.main === module) runCommand("jobs", () => main(hideBin(process.argv)));
