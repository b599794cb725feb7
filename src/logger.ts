import pino, { type Logger } from "pino";
import { redactSecrets } from "./redact";

export type { Logger };

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
 * The process's one logger: JSON lines on stderr (stdout stays free for command results).
 * Every string that reaches a log line passes through `redactSecrets`, so a password in an
 * error message or a connection string never gets written.
 */
export function createLogger(options: { level: string; pod: string }): Logger {
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
    pino.destination({ fd: 2, sync: true }),
  );
}
