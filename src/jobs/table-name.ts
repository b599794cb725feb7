/**
 * A job's `table` read as schema and table. Each part is taken as written (capitals kept, quoted
 * in SQL), or written in double quotes where it holds a dot (a quote inside doubled, as in SQL):
 * "orders", "billing.Orders", '"my.schema"."t"'. Anything else ("public.orders.v2", "a..b")
 * names no table, rather than the first two parts of one.
 */

/** A part: in double quotes, or as written up to the next dot (not starting with a quote). */
const PART = `(?:"((?:[^"]|"")+)"|([^."][^.]*))`;
const TABLE_NAME = new RegExp(`^${PART}(?:\\.${PART})?$`);

export interface TableName {
  schema: string;
  table: string;
}

/** How a table is named, for the message refusing one that is not. */
export const TABLE_NAME_FORMS = `"table" or "schema.table" (a name holding a dot in double quotes: '"my.schema"."t"')`;

/** The schema (public unless named) and table `text` names; undefined when it names none. */
export function parseTableName(text: string): TableName | undefined {
  const match = TABLE_NAME.exec(text);
  if (!match) return undefined;
  const [, quotedFirst, first, quotedSecond, second] = match;
  const firstPart = quotedFirst?.replaceAll('""', '"') ?? (first as string);
  const secondPart = quotedSecond?.replaceAll('""', '"') ?? second;
  return secondPart === undefined ? { schema: "public", table: firstPart } : { schema: firstPart, table: secondPart };
}
