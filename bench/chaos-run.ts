import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage, requireWholeNumbers } from "../cli/args";
import { runCommand } from "../cli/run-command";
import { parseConfig } from "../src/config/config";
import { getCatalog, getLogger } from "../src/config/context";
import { migrate } from "../src/db/migrate";
import { withPool } from "../src/db/pool";
import { DEFAULT_JOB } from "../src/jobs/catalog";
import { printResult } from "../src/terminal/output";
import { runSettings, startRun } from "../workflows/start-run";
import { runChaos, verifyRun } from "./chaos";
import { withScratchDatabase } from "./scratch-database";
import { insertSyntheticUsers } from "./synthetic-users";

/**
 * `npm run chaos`: a long chaos run in a database of its own (on DATABASE_URL's server, or an
 * embedded one), then the checks of verifyRun and a report (kills, restarts, recovery times).
 */

async function main(argv: string[]): Promise<void> {
  const args = await yargs(argv)
    .option("rows", { type: "number", default: 200_000 })
    .option("workers", { type: "number", default: 4, describe: "worker processes kept running" })
    .option("kill-every-ms", { type: "number", default: 3000 })
    .option("timeout-s", { type: "number", default: 1800 })
    .option("seed", { type: "number", default: 1 })
    .option("dead-after-s", { type: "number", default: 10, describe: "WORKER_DEAD_AFTER_S of the workers" })
    .check((a) => requireWholeNumbers(a, ["rows", "workers", "kill-every-ms", "timeout-s", "seed", "dead-after-s"]))
    .strict()
    .fail(failOnUsage)
    .parseAsync();
  const logger = getLogger();
  await withScratchDatabase("chaos", async ({ url, pool }) => {
    await migrate(pool, logger);
    await insertSyntheticUsers(pool, args.rows);
    const env = {
      CHUNK_SIZE: "2000",
      WORKERS: "2",
      FAIL_RATE: "0.01",
      MAX_ATTEMPTS: "3",
      RETRY_DELAY_S: "1",
      WORKER_DEAD_AFTER_S: String(args["dead-after-s"]),
      SHUTDOWN_GRACE_S: "10",
      PROCESS_DELAY_MS: "1",
    };
    const db = withPool(pool);
    const users = getCatalog().get(DEFAULT_JOB);
    await startRun(db, users, "chaos", runSettings(parseConfig(env), users), "chaos-run", "now");
    const report = await runChaos({
      pool,
      url,
      runName: "chaos",
      workers: args.workers,
      killEveryMs: args["kill-every-ms"],
      timeoutMs: args["timeout-s"] * 1000,
      seed: args.seed,
      env,
      log: (line) => logger.info(line),
    });
    const problems = await verifyRun(pool, "chaos", 3);
    const recoveries = [...report.recoveries].sort((a, b) => a - b);
    printResult({
      rows: args.rows,
      workers: args.workers,
      ...report,
      recoveries: undefined,
      recoverySeconds: {
        count: recoveries.length,
        median: recoveries[Math.floor(recoveries.length / 2)] ?? null,
        max: recoveries.at(-1) ?? null,
      },
      deadAfterSeconds: Number(env.WORKER_DEAD_AFTER_S),
      problems,
    });
    if (problems.length > 0) process.exitCode = 1;
  });
}

runCommand("chaos", () => main(hideBin(process.argv)));
