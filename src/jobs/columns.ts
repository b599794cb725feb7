/**
 * The columns a job reads and writes, declared with their kind: the kind gives the value's
 * TypeScript type (what the job's function receives and returns), the array type its outcomes
 * travel in, and the catalog types a table's column may have for it (checked at enqueue and at
 * worker start, src/jobs/catalog-check.ts).
 */

export interface Column<T = unknown> {
  kind: string;
  /** The table's column; when omitted, the property's name is taken as it is. */
  name: string | undefined;
  /** Whether the value may be NULL (then `null` in TypeScript). */
  allowsNull: boolean;
  /** Element type of the array a slice writes the column's outcomes in. */
  arrayType: string;
  /** pg_type names a table's column of this kind may have. */
  accepts: readonly string[];
  /** Never set: carries the value's TypeScript type. */
  readonly value?: T;
}

export interface ColumnBuilder<T> extends Column<T> {
  /** The column may hold NULL; its value is `T | null`. */
  nullable(): Column<T | null>;
}

function kind<T>(name: string, arrayType: string, accepts: readonly string[]) {
  return (columnName?: string): ColumnBuilder<T> => {
    const declared = { kind: name, name: columnName, arrayType, accepts };
    return { ...declared, allowsNull: false, nullable: () => ({ ...declared, allowsNull: true }) };
  };
}

/**
 * Column kinds. BIGINT reads as a number (keys and counts stay far below 2^53), NUMERIC as text
 * (exact), TIMESTAMP without time zone as its text (it names no instant), TIMESTAMPTZ as a Date.
 */
export const column = {
  text: kind<string>("text", "text", ["text", "varchar", "bpchar", "citext"]),
  integer: kind<number>("integer", "int4", ["int2", "int4"]),
  bigint: kind<number>("bigint", "int8", ["int2", "int4", "int8"]),
  double: kind<number>("double", "float8", ["float4", "float8"]),
  numeric: kind<string>("numeric", "numeric", ["numeric"]),
  boolean: kind<boolean>("boolean", "bool", ["bool"]),
  timestamp: kind<string>("timestamp", "timestamp", ["timestamp"]),
  timestamptz: kind<Date>("timestamptz", "timestamptz", ["timestamptz"]),
  date: kind<string>("date", "date", ["date"]),
  jsonb: kind<unknown>("jsonb", "jsonb", ["jsonb", "json"]),
};

/** The type of a column's value. */
export type ValueOf<C> = C extends Column<infer T> ? T : never;

/** A record of columns by property name, as its values. */
export type ValuesOf<Columns extends Record<string, Column>> = { [P in keyof Columns]: ValueOf<Columns[P]> };
