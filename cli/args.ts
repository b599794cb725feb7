import { UsageError } from "../src/base/command-error";
import { EXIT_USAGE } from "../src/base/exit-status";
import { fail } from "./run-command";

/** Shared handling of command-line arguments for the project's commands (yargs). */

/** Throws a UsageError unless every named option present is a whole number of at least `min`. */
export function requireWholeNumbers(argv: Record<string, unknown>, names: string[], min = 1): true {
  for (const name of names) {
    const value = argv[name];
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < min)) {
      throw new UsageError(`--${name} must be a whole number of at least ${min}`);
    }
  }
  return true;
}

/**
 * yargs' fail handler: usage mistakes end the process with status 2 and a line a problem (yargs' own
 * messages with a pointer to --help); other errors go on.
 */
export function failOnUsage(message: string | null, error: Error | undefined): never {
  if (error instanceof UsageError) fail(error.lines, EXIT_USAGE);
  if (error && error.name !== "YError") throw error;
  fail(`${message ?? error?.message} (run with --help for usage)`, EXIT_USAGE);
}
