import { CommandError } from "../src/base/command-error";
import { EXIT_FAILED, EXIT_USAGE } from "../src/base/exit-status";
import { ConfigError } from "../src/config/config";
import { getLogger } from "../src/config/context";
import { printable } from "../src/terminal/printable";

/** How the project's commands end: errors on stderr, and the exit status they call for. */

/** Ends the process with one line on stderr for each problem, its control characters escaped. */
export function fail(problems: string | string[], exitStatus = EXIT_FAILED): never {
  for (const problem of typeof problems === "string" ? [problems] : problems) {
    process.stderr.write(`error: ${printable(problem)}\n`);
  }
  process.exit(exitStatus);
}

/** Ends the process with status 2 and one line on stderr: configuration mistakes are not crashes. */
function exitOnConfigError(message: string): never {
  process.stderr.write(`configuration error: ${printable(message)}\n`);
  process.exit(EXIT_USAGE);
}

/**
 * Ends the process for an error: a configuration or command error with its one line and exit
 * status; anything else, a bug, is logged in full first.
 */
export function exitOnError(command: string, error: unknown): never {
  if (error instanceof ConfigError) exitOnConfigError(error.message);
  if (error instanceof CommandError) fail(error.lines, error.exitStatus);
  getLogger().fatal({ err: error }, `${command} failed`);
  fail(error instanceof Error ? error.message : String(error));
}

/**
 * A reader that stops reading (`| head`) closes the pipe: the output is no longer wanted, which
 * is no failure. Any other error writing the output is one.
 */
function endOnClosedOutput(error: NodeJS.ErrnoException): void {
  if (error.code === "EPIPE") process.exit(0);
  fail(`cannot write the output: ${error.message}`);
}

/** Runs a command's main function as the process's entry point. */
export function runCommand(command: string, main: () => Promise<void>): void {
  process.stdout.on("error", endOnClosedOutput);
  main().catch((error: unknown) => exitOnError(command, error));
}
