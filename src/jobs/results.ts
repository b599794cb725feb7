import { ColumnValueError, showValue } from "./columns";
import type { BoundColumn } from "./define";

/**
 * A job's result checked against its `writes` before the slice writes it: each declared
 * property present, null only where declared nullable, each value fitting its column's kind.
 * A result that does not fit fails its own row, with a message naming the property, the
 * column and why; the slice's other rows are written.
 */

/** An outcome column's element: text, or a number or boolean written as JSON writes it; null for NULL. */
export type ResultElement = string | number | boolean | null;

export type EncodedResult = { values: ResultElement[] } | { problem: string };

const NOTHING_TO_WRITE: EncodedResult = { values: [] };

const named = ({ property, column }: BoundColumn) =>
  property === column ? `result ${property}` : `result ${property} (column ${column})`;

/** The elements the write takes for `result`, in the order of `writes`, or why it cannot be written. */
export function encodeResult(writes: readonly BoundColumn[], result: unknown): EncodedResult {
  // a job that declares no result columns sends its records elsewhere: whatever it returns is ignored
  if (writes.length === 0) return NOTHING_TO_WRITE;
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    const expected = writes.map((column) => column.property).join(", ");
    return { problem: `the job returned ${showValue(result)}, not an object with ${expected}` };
  }
  const values: ResultElement[] = new Array(writes.length);
  for (let index = 0; index < writes.length; index++) {
    const column = writes[index] as BoundColumn;
    let value: unknown;
    try {
      value = (result as Record<string, unknown>)[column.property];
      if (value === undefined) return { problem: `${named(column)} is missing from the job's result` };
      if (value === null) {
        if (!column.spec.allowsNull) {
          return { problem: `${named(column)} is null: declare it column.${column.spec.kind}().nullable()` };
        }
        values[index] = null;
      } else {
        values[index] = column.spec.toElement(value);
      }
    } catch (error) {
      const why = error instanceof ColumnValueError ? error.message : `cannot be read: ${showValue(error)}`;
      return { problem: `${named(column)}: ${why}` };
    }
  }
  return { values };
}
