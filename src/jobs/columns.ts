import pg from "pg";

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
  /** The value from its text form (the column's output, as COPY writes it); never given NULL. */
  fromText: (text: string) => T;
  /** Never set: carries the value's TypeScript type. */
  readonly value?: T;
}

export interface ColumnBuilder<T> extends Column<T> {
  /** The column may hold NULL; its value is `T | null`. */
  nullable(): Column<T | null>;
}

function kind<T>(name: string, arrayType: string, accepts: readonly string[], fromText: (text: string) => T) {
  return (columnName?: string): ColumnBuilder<T> => {
    const declared = { kind: name, name: columnName, arrayType, accepts, fromText };
    return {
      ...declared,
      allowsNull: false,
      nullable: () => ({ ...declared, allowsNull: true }) as Column<T | null>,
    };
  };
}

const asText = (text: string) => text;
/** As node-postgres reads a TIMESTAMPTZ: the instant, whatever the session's time zone. */
const asInstant = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ) as (text: string) => Date;

/**
 * Column kinds. BIGINT reads as a number (keys and counts stay far below 2^53), NUMERIC as text
 * (exact), TIMESTAMP without time zone as its text (it names no instant), TIMESTAMPTZ as a Date.
 */
export const column = {
  text: kind<string>("text", "text", ["text", "varchar", "bpchar", "citext"], asText),
  integer: kind<number>("integer", "int4", ["int2", "int4"], Number),
  bigint: kind<number>("bigint", "int8", ["int2", "int4", "int8"], Number),
  double: kind<number>("double", "float8", ["float4", "float8"], Number.parseFloat),
  numeric: kind<string>("numeric", "numeric", ["numeric"], asText),
  boolean: kind<boolean>("boolean", "bool", ["bool"], (text) => text === "t"),
  timestamp: kind<string>("timestamp", "timestamp", ["timestamp"], asText),
  timestamptz: kind<Date>("timestamptz", "timestamptz", ["timestamptz"], asInstant),
  date: kind<string>("date", "date", ["date"], asText),
  jsonb: kind<unknown>("jsonb", "jsonb", ["jsonb", "json"], (text) => JSON.parse(text)),
};

/** The type of a column's value. */
export type ValueOf<C> = C extends Column<infer T> ? T : never;

/** A record of columns by property name, as its values. */
export type ValuesOf<Columns extends Record<string, Column>> = { [P in keyof Columns]: ValueOf<Columns[P]> };
