import fs from "node:fs";
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { MIGRATIONS_DIR } from "../src/base/paths";
import { getCatalog } from "../src/config/context";
import { withPool } from "../src/db/pool";
import { assertJobsFitDatabase } from "../src/jobs/catalog-check";
import { describeParams } from "../src/jobs/params";
import { stateMigrationSql } from "../src/jobs/state-migration";
import { printResult, table } from "../src/terminal/output";
import { failOnUsage } from "./args";
import { withCommandPool } from "./command-pool";
import { runCommand } from "./run-command";

/**
 * Where the job's migration goes: nowhere when a migration of the job holds that very SQL
 * already, else the next free number of sql/migrations (three digits, as the others).
 */
function migrationTarget(job: string, sql: string): { file: string; upToDate: boolean } {
  const files = fs.readdirSync(MIGRATIONS_DIR).filter((file) => /^\d+_/.test(file));
  const suffix = `_job_${job.replaceAll("-", "_")}.sql`;
  const same = files.find(
    (file) => file.endsWith(suffix) && fs.readFileSync(path.join(MIGRATIONS_DIR, file), "utf8") === sql,
  );
  if (same) return { file: path.join(MIGRATIONS_DIR, same), upToDate: true };
  const next = String(Math.max(0, ...files.map((file) => Number.parseInt(file, 10))) + 1).padStart(3, "0");
  return { file: path.join(MIGRATIONS_DIR, `${next}${suffix}`), upToDate: false };
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
        describeParams(job.params) || "-",
        job.schedule ? `${job.schedule.cron} (${job.schedule.timeZone})` : "-",
        job.description,
      ]);
      const headers = ["JOB", "TABLE", "KEY", "CHUNK", "PARAMS", "SCHEDULE", "DESCRIPTION"];
      process.stdout.write(`${table(headers, rows)}\n`);
    })
    .command(
      "check [job]",
      "check the jobs (or one) against the database's tables: one line per mismatch",
      (cmd) => cmd.positional("job", { type: "string", describe: "one job's name" }),
      async (args) => {
        const catalog = getCatalog();
        const jobs = args.job ? [catalog.get(args.job)] : catalog.jobs;
        await withCommandPool("jobs", 1, (pool) => withPool(pool)((client) => assertJobsFitDatabase(client, jobs)));
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
        const { file, upToDate } = migrationTarget(args.job, sql);
        const shown = path.relative(process.cwd(), file);
        if (upToDate) {
          printResult({ upToDate: shown });
          return;
        }
        fs.writeFileSync(file, sql, { flag: "wx" });
        printResult({ written: shown, apply: "npm run seed -- schema" });
      },
    )
    .demandCommand(1, "name a command")
    .strict()
    .fail(failOnUsage)
    .help()
    .parseAsync();
}

if (require.main === module) runCommand("jobs", () => main(hideBin(process.argv)));
