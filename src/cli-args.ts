/** Shared handling of command-line arguments for the project's commands (yargs). */

/** Bad usage: reported in one line with exit status 2, like a configuration error. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const EXIT_USAGE = 2;

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

/** yargs' fail handler: usage mistakes end the process with status 2; other errors go on. */
export function failOnUsage(message: string | null, error: Error | undefined): never {
  if (error && !(error instanceof UsageError) && error.name !== "YError") throw error;
  process.stderr.write(`error: ${message ?? error?.message}\nRun with --help for usage.\n`);
  process.exit(EXIT_USAGE);
}
