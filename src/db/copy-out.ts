import type { PoolClient } from "pg";
import { to as copyTo } from "pg-copy-streams";

/**
 * The rows of a `COPY (query) TO STDOUT` in text format, each handed to `onRow` as its fields'
 * text (null for NULL); resolves with how many there were. Read this way, a slice's rows are
 * decoded in one go and split in JavaScript, where the row messages of a query cost a native
 * decode per field: the claim of a slice takes the client less than half the time (docs/benchmark-history.md, "Claims as COPY text").
 */
export function copyOutRows(
  client: PoolClient,
  sql: string,
  onRow: (fields: (string | null)[]) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stream = client.query(copyTo(sql));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      try {
        resolve(parseCopyText(Buffer.concat(chunks).toString("utf8"), onRow));
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** COPY's text format: a line per row, fields apart by tabs, `\N` for NULL, backslash escapes. Returns the rows. */
export function parseCopyText(text: string, onRow: (fields: (string | null)[]) => void): number {
  let rows = 0;
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf("\n", start);
    const end = newline === -1 ? text.length : newline;
    const fields: (string | null)[] = text.slice(start, end).split("\t");
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i] as string;
      if (field.includes("\\")) fields[i] = field === "\\N" ? null : unescapeField(field);
    }
    onRow(fields);
    rows++;
    start = end + 1;
  }
  return rows;
}

/** What COPY TO writes escaped: the backslash itself, and \b \f \n \r \t \v. */
const ESCAPED: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" };

function unescapeField(field: string): string {
  return field.replace(/\\(.)/gs, (_, next: string) => ESCAPED[next] ?? next);
}
