import { drawLiveLine, endLiveLine } from "../base/live-line";
import type { Logger } from "../base/logger";
import { formatCount } from "./format";

export interface Progress {
  /** Sets the amount done so far (and the total, when it is learnt late). */
  update(done: number, total?: number): void;
  finish(): void;
}

const BAR_WIDTH = 30;
const REDRAW_MS = 100;
const LOG_EVERY_MS = 5000;
/** The longest step name, so that the bars of successive steps line up. */
const LABEL_WIDTH = 8;

/**
 * Progress of a long step: a redrawn bar on stderr when it is a terminal, otherwise a log line
 * every few seconds (so container logs show progress too).
 */
export function createProgress(options: { label: string; total: number; unit: string; logger: Logger }): Progress {
  const { label, unit, logger } = options;
  let total = options.total;
  const interactive = process.stderr.isTTY === true;
  const started = performance.now();
  let done = 0;
  let lastDrawn = 0;
  let lastLogged = -1;

  const rate = () => done / Math.max((performance.now() - started) / 1000, 0.001);

  const draw = () => {
    const share = total > 0 ? Math.min(done / total, 1) : 1;
    const filled = Math.round(share * BAR_WIDTH);
    const eta = rate() > 0 ? Math.ceil((total - done) / rate()) : 0;
    drawLiveLine(
      `${label.padEnd(LABEL_WIDTH)} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ` +
        `${(share * 100).toFixed(0).padStart(3)}% ${formatCount(done)}/${formatCount(total)} ${unit} ` +
        `${formatCount(rate())}/s ETA ${eta}s`,
    );
  };

  const log = () => {
    if (done === lastLogged) return;
    lastLogged = done;
    logger.info(
      { step: label, done, total, unit, perSecond: Math.round(rate()) },
      `${label}: ${formatCount(done)}/${formatCount(total)} ${unit}`,
    );
  };

  return {
    update(value, newTotal) {
      done = value;
      if (newTotal !== undefined) total = newTotal;
      const now = performance.now();
      if (now - lastDrawn < (interactive ? REDRAW_MS : LOG_EVERY_MS)) return;
      lastDrawn = now;
      if (interactive) draw();
      else log();
    },
    finish() {
      if (interactive) {
        draw();
        endLiveLine();
      } else {
        log();
      }
    },
  };
}
