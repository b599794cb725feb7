import pg from "pg";

const INT8_OID = 20;
const TIMESTAMP_OID = 1114;
const DATE_OID = 1082;

const parseBigint = (value: string) => Number.parseInt(value, 10);
const keepText = (value: string) => value;

/**
 * Type parsing for the queries that ask for it; the global parsers are left alone for
 * graphile-worker's own queries. BIGINT becomes a number (counts stay far below 2^53; keys
 * are read with KEY_TYPES) and
 * TIMESTAMP (without time zone) and DATE stay text: they name no instant, and parsing them into
 * a Date costs more than the rest of a row.
 */
export const ROW_TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8_OID) return parseBigint;
    if (oid === TIMESTAMP_OID || oid === DATE_OID) return keepText;
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

/** As ROW_TYPES, but BIGINT as a BigInt: for the queries that return keys, exact over int8's range. */
export const KEY_TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? BigInt : ROW_TYPES.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Every value as PostgreSQL's text, as a COPY TO STDOUT gives it: for rows read as a claim reads them. */
export const KEEP_TEXT = {
  getTypeParser: (() => keepText) as unknown as typeof pg.types.getTypeParser,
};
