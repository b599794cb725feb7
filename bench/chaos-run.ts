import { randomBytes } from "node:crypto";
import pg from "pg";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { failOnUsage, requireWholeNumbers } from "../src/cli-args";
import { printResult, runCommand } from "../src/cli-output";
import { getConfig, parseConfig } from "../src/config";
import { getLogger } from "../src/context";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "../src/db/embedded";
import { migrate } from "../src/db/migrate";
import { createPool, withPool } from "../src/db/pool";
import { planRun, runSettings, startRun } from "../workflows/batch-run";
import { runChaos, verifyRun } from "./chaos";

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
  const config = getConfig();
  const logger = getLogger();
  let embedded: EmbeddedDatabase | undefined;
  if (!config.databaseUrl) embedded = await startEmbeddedPostgres(logger);
  const serverUrl = config.databaseUrl ?? (embedded as EmbeddedDatabase).url;
  const name = `chaos_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), max: 4, appName: "chaos", logger });
  try {
    await migrate(pool, logger);
    await pool.query(
      `INSERT INTO users (id, name, email, age, salary)
       SELECT g, 'User ' || g, 'user.' || g || '@example.com', 18 + g % 60, 30000 + g % 120000
         FROM generate_series(1, $1::bigint) g`,
      [args.rows],
    );
    const env = {
      CLAIM_SIZE: "2000",
      WORKERS: "2",
      FAIL_RATE: "0.01",
      MAX_ATTEMPTS: "3",
      RETRY_DELAY_S: "1",
      WORKER_DEAD_AFTER_S: String(args["dead-after-s"]),
      SHUTDOWN_GRACE_S: "10",
      PROCESS_DELAY_MS: "1",
    };
    const db = withPool(pool);
    const { run } = await startRun(db, "chaos", runSettings(parseConfig(env)), "chaos-run");
    await planRun(db, run.id, "chaos-run");
    const report = await runChaos({
      pool,
      url: url.toString(),
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
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
    await embedded?.stop();
  }
}

runCommand("chaos", () => main(hideBin(process.argv)));
