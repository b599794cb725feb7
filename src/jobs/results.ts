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

/** A result column as a message names it: its property, and its column where the names differ. */
export const resultName = ({ property, column }: BoundColumn) =>
  property === column ? `result ${property}` : `result ${property} (column ${column})`;

/**
 * Puts in `elements` what the write takes for `result`, one per result column in the order of
 * `writes`; returns instead why it cannot be written, when it cannot. `elements` is the caller's
 * to reuse: a result costs no array of its own.
 */
export function encodeResult(
  writes: readonly BoundColumn[],
  result: unknown,
  elements: ResultElement[],
): string | undefined {
  // a job that declares no result columns sends its records elsewhere: whatever it returns is ignored
  if (writes.length === 0) return undefined;
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    const expected = writes.map((column) => column.property).join(", ");
    return `the job returned ${showValue(result)}, not an object with ${expected}`;
  }
  for (let index = 0; index < writes.length; index++) {
    const column = writes[index] as BoundColumn;
    try {
      const value = (result as Record<string, unknown>)[column.property];
      if (value === undefined) return `${resultName(column)} is missing from the job's result`;
      if (value === null && !column.spec.allowsNull) {
        return `${resultName(column)} is null: declare it column.${column.spec.kind}().nullable()`;
      }
      elements[index] = value === null ? null : column.spec.toElement(value);
    } catch (error) {
      const why = error instanceof ColumnValueError ? error.message : `cannot be read: ${showValue(error)}`;
      return `${resultName(column)}: ${why}`;
    }
  }
  return undefined;
}
