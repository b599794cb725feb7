import { printable } from "./printable";

/** A command's results on stdout: JSON lines and text tables. */

/** One JSON line; control characters that JSON leaves as they are (DEL, C1) are escaped too. */
export function printResult(result: object): void {
  process.stdout.write(`${printable(JSON.stringify(result))}\n`);
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
