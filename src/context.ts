import { getConfig } from "./config";
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
