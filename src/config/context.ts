import fs from "node:fs";
import path from "node:path";
import { chooseLogOutput, createLogger, type Logger } from "../base/logger";
import { JOBS_DIR } from "../base/paths";
import { JobCatalog, loadCatalog } from "../jobs/catalog";
import type { JobDefinition } from "../jobs/define";
import { ConfigError, getConfig } from "./config";

/** The process's one logger and its jobs, made from the environment on first use. */

let logger: Logger | undefined;

export function getLogger(): Logger {
  if (!logger) {
    const config = getConfig();
    const output = chooseLogOutput(config, process.stderr.isTTY === true);
    logger = createLogger({ level: config.logLevel, pod: config.podName, output });
  }
  return logger;
}

let loaded: JobCatalog | undefined;

/** This process's jobs: those of JOBS_DIR or jobs/, unless the process chose its own. */
export function getCatalog(): JobCatalog {
  if (loaded) return loaded;
  const chosen = getConfig().jobsDir;
  if (chosen !== undefined && !fs.statSync(chosen, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ConfigError(`JOBS_DIR ${JSON.stringify(chosen)} is not a directory`);
  }
  loaded = chosen === undefined ? loadCatalog(JOBS_DIR) : loadCatalog(path.resolve(chosen), chosen);
  return loaded;
}

/**
 * Makes `jobs` this process's jobs instead of jobs/: for runners embedded in a program of their
 * own (and tests) that define their jobs in code, as graphile-worker takes a task list.
 */
export function useCatalog(jobs: JobDefinition[]): JobCatalog {
  loaded = new JobCatalog(jobs);
  return loaded;
}
