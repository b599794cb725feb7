import pino, { type Logger } from "pino";
import { prettyFactory } from "pino-pretty";
import { writeAboveLiveLine } from "./live-line";
import { redactSecrets } from "./redact";

export type { Logger };

/** LOG_FORMAT: auto chooses by whether stderr is a terminal. */
export type LogFormat = "auto" | "json" | "pretty";

export interface LogOutput {
  format: "json" | "pretty";
  colorize: boolean;
}

/**
 * The usual CLI conventions: readable lines for a person at a terminal, JSON lines for
 * machines (pipes, files, log collectors); colours only on a terminal, and never with NO_COLOR.
 */
export function chooseLogOutput(
  config: { logFormat: LogFormat; noColor: boolean },
  stderrIsTerminal: boolean,
): LogOutput {
  const format = config.logFormat === "auto" ? (stderrIsTerminal ? "pretty" : "json") : config.logFormat;
  return { format, colorize: format === "pretty" && stderrIsTerminal && !config.noColor };
}

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === "string") return redactSecrets(value);
  if (value instanceof Error) return scrub(pino.stdSerializers.err(value), depth);
  if (depth <= 0 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth - 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrub(item, depth - 1);
  return out;
}

/**
 * Renders a JSON log line as text for a person: local time, level, message, then the fields on
 * the same line. The pod's name is left out: on one's own terminal it is always the same.
 */
function prettyLines(colorize: boolean): (line: string) => string {
  return prettyFactory({ colorize, translateTime: "SYS:HH:MM:ss", ignore: "pod", singleLine: true });
}

/**
 * The process's one logger, on stderr (stdout stays free for command results). Every string
 * that reaches a log line passes through `redactSecrets` before it is formatted, so a password
 * in an error message or a connection string is written in neither format.
 */
export function createLogger(options: { level: string; pod: string; output?: LogOutput }): Logger {
  const { format, colorize } = options.output ?? { format: "json", colorize: false };
  const render = format === "pretty" ? prettyLines(colorize) : (line: string) => line;
  return pino(
    {
      level: options.level,
      base: { pod: options.pod },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: (object) => scrub(object, 6) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((arg) => (typeof arg === "string" ? redactSecrets(arg) : arg)) as Parameters<typeof method>,
          );
        },
      },
    },
    { write: (line: string) => writeAboveLiveLine(render(line)) },
  );
}
