import pg from "pg";

/**
 * The columns a job reads and writes, declared with their kind: the kind gives the value's
 * TypeScript type (what the job's function receives and returns), how a value is read from the
 * column's text and checked before it is written, the array type its outcomes travel in, and
 * the catalog types a table's column may have for it (checked at enqueue and at worker start,
 * src/jobs/catalog-check.ts).
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
  /**
   * The value from its text form (the column's output, as COPY writes it); never given NULL.
   * Throws a ColumnValueError for a value the kind cannot give exactly: the row fails unread.
   */
  fromText: (text: string) => T;
  /**
   * A result as the element of the write's array (its text, or a number or boolean that JSON
   * writes as PostgreSQL reads it); never given null or undefined. Throws a ColumnValueError
   * saying why a value does not fit the kind: its row fails, and the slice's others are written.
   */
  toElement: (value: unknown) => string | number | boolean;
  /** Never set: carries the value's TypeScript type. */
  readonly value?: T;
}

export interface ColumnBuilder<T> extends Column<T> {
  /** The column may hold NULL; its value is `T | null`. */
  nullable(): Column<T | null>;
}

/** A value a column's kind cannot hold, or not exactly: the message says why, of this value only. */
export class ColumnValueError extends Error {
  override name = "ColumnValueError";
}

/** A value as a message shows it: short, whatever it is. */
export function showValue(value: unknown): string {
  let shown: string | undefined;
  try {
    if (typeof value === "bigint") shown = `${value}n`;
    else if (typeof value === "string" || (typeof value === "object" && value !== null && !(value instanceof Date))) {
      shown = JSON.stringify(value);
    }
    shown ??= String(value);
  } catch {
    shown = Object.prototype.toString.call(value);
  }
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}

const refuse = (value: unknown, why: string): never => {
  throw new ColumnValueError(`${showValue(value)} ${why}`);
};

interface KindSpec<T> {
  arrayType: string;
  accepts: readonly string[];
  fromText: (text: string) => T;
  toElement: (value: unknown) => string | number | boolean;
}

function kind<T>(name: string, spec: KindSpec<T>) {
  return (columnName?: string): ColumnBuilder<T> => {
    const declared = { kind: name, name: columnName, ...spec };
    return {
      ...declared,
      allowsNull: false,
      nullable: () => ({ ...declared, allowsNull: true }) as Column<T | null>,
    };
  };
}

/** With the u flag, a surrogate matches only where it is not half of a pair. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Text PostgreSQL can store: well-formed Unicode (no lone surrogate) without NUL. */
function storableText(value: unknown, what = "is not a string"): string {
  if (typeof value !== "string") return refuse(value, what);
  if (LONE_SURROGATE.test(value)) return refuse(value, "is not well-formed Unicode (it holds a lone surrogate)");
  if (value.includes("\0")) return refuse(value, "holds a NUL character, which PostgreSQL text cannot store");
  return value;
}

const INT4 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const INT8 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };

function int4Element(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) return refuse(value, "is not a whole number");
  if (value < INT4.min || value > INT4.max) return refuse(value, "is out of range for integer");
  return value;
}

/** A bigint as a number or a BigInt: a number must be exact, a BigInt fit in 64 bits. */
function int8Element(value: unknown): string | number {
  if (typeof value === "bigint") {
    if (value < INT8.min || value > INT8.max) return refuse(value, "is out of range for bigint");
    return String(value);
  }
  if (typeof value !== "number" || !Number.isInteger(value)) return refuse(value, "is not a whole number");
  if (!Number.isSafeInteger(value)) {
    return refuse(value, "is beyond 2^53, where a number is no longer exact: return a BigInt");
  }
  return value;
}

/** A BIGINT read as a number, which holds every integer up to 2^53 exactly and no further. */
function exactNumber(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new ColumnValueError(
      `holds ${text}, beyond 2^53, where a number is no longer exact: read it as column.int8()`,
    );
  }
  return value;
}

/** A double's element: JSON writes a finite number as float8 reads it, but not -0, NaN or the infinities. */
function doubleElement(value: unknown): string | number {
  if (typeof value !== "number") return refuse(value, "is not a number");
  return Number.isFinite(value) && !Object.is(value, -0) ? value : String(Object.is(value, -0) ? "-0" : value);
}

/** NUMERIC's input: a decimal, with an exponent or not, NaN or an infinity (PostgreSQL 14 on). */
const NUMERIC_TEXT = /^\s*(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]?(?:Infinity|inf))\s*$/i;

function numericElement(value: unknown): string {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return refuse(value, "is not a finite number");
    return String(value);
  }
  if (typeof value !== "string" || !NUMERIC_TEXT.test(value)) return refuse(value, "is not a number's text");
  return value;
}

/**
 * A TIMESTAMPTZ as read: a Date, which holds milliseconds, and the column's text, which holds
 * microseconds too. Written back unchanged, it writes its text: a value that only passes
 * through a job keeps its microseconds.
 */
export class Instant extends Date {
  constructor(
    readonly text: string,
    time: number,
  ) {
    super(time);
  }
}

/** As node-postgres reads a TIMESTAMPTZ: the instant, whatever the session's time zone. */
const parseInstant = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ) as (text: string) => Date | number;

function readInstant(text: string): Instant {
  const parsed = parseInstant(text);
  const time = parsed instanceof Date ? parsed.getTime() : Number.NaN;
  if (Number.isNaN(time)) throw new ColumnValueError(`holds ${text}, which a Date cannot hold`);
  return new Instant(text, time);
}

const pad = (value: number, width = 2) => String(value).padStart(width, "0");

/** A Date as TIMESTAMPTZ's input, in UTC: years past 9999 and before the common era too. */
function instantElement(value: unknown): string {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) return refuse(value, "is not a valid Date");
  if (value instanceof Instant && readInstant(value.text).getTime() === value.getTime()) return value.text;
  const year = value.getUTCFullYear();
  const date = `${pad(year > 0 ? year : 1 - year, 4)}-${pad(value.getUTCMonth() + 1)}-${pad(value.getUTCDate())}`;
  const time = `${pad(value.getUTCHours())}:${pad(value.getUTCMinutes())}:${pad(value.getUTCSeconds())}`;
  return `${date} ${time}.${pad(value.getUTCMilliseconds(), 3)}+00${year > 0 ? "" : " BC"}`;
}

/**
 * A JSON value as JSONB's input. Refused: what JSON.stringify would drop or change without a
 * word (undefined, functions, NaN and the infinities), and text JSONB cannot hold.
 */
function jsonElement(value: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, item: unknown) => {
      if (item === undefined || typeof item === "function" || typeof item === "symbol") {
        throw new ColumnValueError(`holds ${String(item)}, which JSON has not`);
      }
      if (typeof item === "number" && !Number.isFinite(item)) {
        throw new ColumnValueError(`holds ${item}, which JSON has not`);
      }
      if (typeof item === "string") storableText(item);
      return item;
    });
  } catch (error) {
    if (error instanceof ColumnValueError) throw new ColumnValueError(`${showValue(value)} ${error.message}`);
    return refuse(value, `is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return json ?? refuse(value, "is not JSON");
}

const asText = (text: string) => text;

/**
 * Column kinds. BIGINT reads as a number, exact up to 2^53 (a row holding more fails unread),
 * or with int8() as a BigInt, exact over its range; NUMERIC as text (exact); TIMESTAMP without
 * time zone and DATE as their text (they name no instant); TIMESTAMPTZ as a Date (an Instant).
 */
export const column = {
  text: kind<string>("text", {
    arrayType: "text",
    accepts: ["text", "varchar", "bpchar", "citext"],
    fromText: asText,
    toElement: (value) => storableText(value),
  }),
  integer: kind<number>("integer", {
    arrayType: "int4",
    accepts: ["int2", "int4"],
    fromText: Number,
    toElement: int4Element,
  }),
  bigint: kind<number>("bigint", {
    arrayType: "int8",
    accepts: ["int2", "int4", "int8"],
    fromText: exactNumber,
    toElement: int8Element,
  }),
  int8: kind<bigint>("int8", {
    arrayType: "int8",
    accepts: ["int2", "int4", "int8"],
    fromText: BigInt,
    toElement: int8Element,
  }),
  double: kind<number>("double", {
    arrayType: "float8",
    accepts: ["float4", "float8"],
    fromText: Number.parseFloat,
    toElement: doubleElement,
  }),
  numeric: kind<string>("numeric", {
    arrayType: "numeric",
    accepts: ["numeric"],
    fromText: asText,
    toElement: numericElement,
  }),
  boolean: kind<boolean>("boolean", {
    arrayType: "bool",
    accepts: ["bool"],
    fromText: (text) => text === "t",
    toElement: (value) => (typeof value === "boolean" ? value : refuse(value, "is not a boolean")),
  }),
  timestamp: kind<string>("timestamp", {
    arrayType: "timestamp",
    accepts: ["timestamp"],
    fromText: asText,
    toElement: (value) => storableText(value, "is not a timestamp's text"),
  }),
  timestamptz: kind<Date>("timestamptz", {
    arrayType: "timestamptz",
    accepts: ["timestamptz"],
    fromText: readInstant,
    toElement: instantElement,
  }),
  date: kind<string>("date", {
    arrayType: "date",
    accepts: ["date"],
    fromText: asText,
    toElement: (value) => storableText(value, "is not a date's text"),
  }),
  jsonb: kind<unknown>("jsonb", {
    arrayType: "jsonb",
    accepts: ["jsonb", "json"],
    fromText: (text) => JSON.parse(text),
    toElement: jsonElement,
  }),
};

/** The type of a column's value. */
export type ValueOf<C> = C extends Column<infer T> ? T : never;

/** A record of columns by property name, as its values. */
export type ValuesOf<Columns extends Record<string, Column>> = { [P in keyof Columns]: ValueOf<Columns[P]> };
