import { getLogger } from "./context";

/** Output helpers shared by the project's commands: results on stdout, errors on stderr. */

/** An expected failure of a command (a file that did not import, an unknown run): its message is enough. */
export class CommandError extends Error {
  override name = "CommandError";
}

/** Exit statuses: 0 done, 1 the work failed or was refused, 2 bad usage or configuration. */
const EXIT_FAILED = 1;

export function printResult(result: object): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(EXIT_FAILED);
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

/**
 * Runs a command's main function as the process's entry point: a CommandError ends it with its
 * message, anything else is logged in full first.
 */
export function runCommand(command: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    if (!(error instanceof CommandError)) getLogger().fatal({ err: error }, `${command} failed`);
    fail(error instanceof Error ? error.message : String(error));
  });
}
