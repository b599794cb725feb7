import pg from "pg";

const INT8_OID = 20;

/**
 * Parses BIGINT columns as numbers for the queries that ask for it. Row ids stay far below
 * 2^53, and the global parser is left alone for graphile-worker's own queries.
 */
export const ROW_TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID
      ? (value: string) => Number.parseInt(value, 10)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};
