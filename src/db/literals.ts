import { escapeLiteral } from "pg";

/**
 * Values written as SQL text: literals for the statements that take no parameters (COPY), and
 * the array parameters a slice's outcomes travel in.
 */

/** What a claim's values may be: keys and counts, an instant, a job's `where` lists. */
export type LiteralValue = number | bigint | string | boolean | Date | readonly (number | string | boolean)[];

/**
 * A value as a quoted literal whose type PostgreSQL takes from where it stands, as it would a
 * parameter's: `'42'` compared with a bigint column is a bigint, `'{a,b}'` in `= ANY(...)` an
 * array of the column's type.
 */
export function sqlLiteral(value: LiteralValue): string {
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
  if (value instanceof Date) return escapeLiteral(value.toISOString());
  if (Array.isArray(value)) return escapeLiteral(`{${value.map(quotedElement).join(",")}}`);
  return escapeLiteral(String(value));
}

function quotedElement(value: number | string | boolean): string {
  return `"${String(value).replace(/[\\"]/g, "\\$&")}"`;
}

/**
 * An array of nulls, strings, finite numbers and booleans as PostgreSQL's array input reads it
 * (`{1,"a b",NULL}`); undefined for any other array, which node-postgres then encodes itself.
 * JSON quotes such elements as the array literal does, and JSON.stringify does the whole array in
 * one native call: a slice's outcome columns cost a fraction of quoting each element in turn.
 */
export function plainArrayLiteral(values: readonly unknown[]): string | undefined {
  if (!values.every(isPlainElement)) return undefined;
  const json = JSON.stringify(values);
  if (json.includes("\\") && JSON_ESCAPE_OTHER_THAN_QUOTE_OR_BACKSLASH.test(json)) return undefined;
  return `{${json.slice(1, -1)}}`;
}

/** \n, \u0001 and the like, which the array literal would read as the letter alone: a backslash after an even run of them. */
const JSON_ESCAPE_OTHER_THAN_QUOTE_OR_BACKSLASH = /(?<!\\)(?:\\\\)*\\[^"\\]/;

function isPlainElement(value: unknown): boolean {
  return (
    value === null ||
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}
