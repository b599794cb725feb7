import pino from "pino";

/**
 * The one line at the bottom of a terminal that is redrawn in place (a progress bar), and
 * stderr's writes around it: a log line written while the bar shows clears it first and draws
 * it again below, so neither tears the other. Writes are synchronous, so nothing is lost on
 * process.exit.
 */

const stderr = pino.destination({ fd: 2, sync: true });
/** The live line as last drawn; empty when none shows. */
let shown = "";

const CLEAR_TO_END = "\x1b[K";

/** Draws the live line, replacing the one shown; cut to the terminal's width, as a wrapped line cannot be redrawn. */
export function drawLiveLine(text: string): void {
  const columns = process.stderr.columns;
  shown = columns ? text.slice(0, columns - 1) : text;
  stderr.write(`\r${shown}${CLEAR_TO_END}`);
}

/** Leaves the live line on screen as it is; what follows starts on the next line. */
export function endLiveLine(): void {
  if (shown) stderr.write("\n");
  shown = "";
}

/** Writes whole lines (ending in a newline) to stderr, above the live line if one shows. */
export function writeAboveLiveLine(lines: string): void {
  stderr.write(shown ? `\r${CLEAR_TO_END}${lines}${shown}${CLEAR_TO_END}` : lines);
}
