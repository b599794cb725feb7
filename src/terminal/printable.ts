/** Control characters (C0, DEL, C1): in a name, they could break a line or move the cursor. */
const CONTROL = /\p{Cc}/gu;

const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * Text safe to write to a terminal: every control character escaped as JSON escapes it (`\n`,
 * `\u001b`), so that a run's name can neither break a table's line nor clear the screen. The
 * escapes are valid JSON too, so a JSON line stays valid.
 */
export function printable(text: string): string {
  return text.replace(
    CONTROL,
    (char) => SHORT_ESCAPES[char] ?? `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}
