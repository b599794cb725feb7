import { ConfigError, exitOnConfigError } from "./config";
import { getLogger } from "./context";
import { EXIT_FAILED } from "./exit-status";
import { printable } from "./printable";

/** Output helpers shared by the project's commands: results on stdout, errors on stderr. */

/**
 * An expected failure of a command (a file that did not import, an unknown run): its message is
 * enough, and says what to do. It ends the process with `exitStatus`.
 */
export class CommandError extends Error {
  override name = "CommandError";
  readonly exitStatus: number = EXIT_FAILED;

  /** `lines`: one problem each, printed a line each (the message joins them). */
  constructor(
    message: string,
    readonly lines: string[] = [message],
  ) {
    super(message);
  }
}

/** One JSON line; control characters that JSON leaves as they are (DEL, C1) are escaped too. */
export function printResult(result: object): void {
  process.stdout.write(`${printable(JSON.stringify(result))}\n`);
}

/** Ends the process with one line on stderr for each problem, its control characters escaped. */
export function fail(problems: string | string[], exitStatus = EXIT_FAILED): never {
  for (const problem of typeof problems === "string" ? [problems] : problems) {
    process.stderr.write(`error: ${printable(problem)}\n`);
  }
  process.exit(exitStatus);
}

/** Renders rows as an aligned text table; control characters in cells are escaped. */
export function table(headers: string[], rows: string[][]): string {
  const cells = rows.map((row) => row.map(printable));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => (row[i] ?? "").length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((width) => "-".repeat(width))), ...cells.map(line)].join("\n");
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
