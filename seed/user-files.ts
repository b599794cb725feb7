import fs from "node:fs";

/** The id, as PostgreSQL's bigint input reads it ("007" is 7), or the text where it is no number. */
function normalizeId(text: string): string {
  try {
    return BigInt(text.trim()).toString();
  } catch {
    return text;
  }
}

/** The first `count` fields of a CSV record, unquoted the way COPY's CSV format does it. */
function leadingFields(record: string, count: number): string[] {
  if (!record.includes('"')) return record.split(",", count);
  const fields: string[] = [];
  let i = 0;
  while (fields.length < count && i <= record.length) {
    let value = "";
    let quoted = false;
    for (; i < record.length; i++) {
      const c = record[i];
      if (quoted) {
        if (c !== '"') value += c;
        else if (record[i + 1] === '"') {
          value += '"';
          i++;
        } else quoted = false;
      } else if (c === '"') quoted = true;
      else if (c === ",") break;
      else value += c;
    }
    fields.push(value);
    i++;
  }
  return fields;
}

/**
 * Calls `onUser` with the id and email of every row of a CSV file of users (the columns of
 * CSV_COLUMNS, in that order, after a header), and the line COPY names for that row: lines are
 * counted as COPY counts them, a quoted field's newlines included. Reads the file as a stream.
 */
export async function forEachUser(
  filePath: string,
  onUser: (line: number, id: string, email: string) => void,
): Promise<void> {
  let line = 0;
  // a record whose quoted field goes on past the end of its first line
  let open: string | undefined;
  const onLine = (text: string) => {
    line++;
    const record = open === undefined ? text : `${open}\n${text}`;
    if (record.includes('"') && (record.match(/"/g) as RegExpMatchArray).length % 2 === 1) {
      open = record;
      return;
    }
    open = undefined;
    if (line === 1) return; // the header
    const [id = "", , email = ""] = leadingFields(record.endsWith("\r") ? record.slice(0, -1) : record, 3);
    onUser(line, normalizeId(id), email);
  };
  let rest = "";
  for await (const chunk of fs.createReadStream(filePath, { encoding: "utf8", highWaterMark: 1 << 20 })) {
    const text = rest + chunk;
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      onLine(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
  }
  if (rest !== "") onLine(rest);
}
