import type pg from "pg";
import { getConfig, requireDatabaseUrl } from "./config";
import { createPool } from "./db/pool";
import { chooseLogOutput, createLogger, type Logger } from "./logger";

let logger: Logger | undefined;

/** The process's one logger, configured from the environment on first use. */
export function getLogger(): Logger {
  if (!logger) {
    const config = getConfig();
    const output = chooseLogOutput(config, process.stderr.isTTY === true);
    logger = createLogger({ level: config.logLevel, pod: config.podName, output });
  }
  return logger;
}

/** Runs a command with the process's pool on DATABASE_URL (required), closed afterwards. */
export async function withCommandPool<T>(
  command: string,
  connections: number,
  fn: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const config = getConfig();
  const pool = createPool({
    url: requireDatabaseUrl(config),
    max: connections,
    appName: `${command} ${config.podName}`,
    logger: getLogger(),
  });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}
