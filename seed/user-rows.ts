// the English locale alone: the package root loads every locale (some 25 MB per thread)
import { faker } from "@faker-js/faker/locale/en";

/** One generated CSV file: rows firstId .. firstId+rows-1, reproducible from (seed, index). */
export interface FileSpec {
  index: number;
  path: string;
  firstId: number;
  rows: number;
  seed: number;
  /** "pending": every row waits to be processed; "original": each row's status drawn evenly from four, with a batch id. */
  statusMix: StatusMix;
  /** created_at falls within the year before this instant. */
  asOf: string;
}

export type StatusMix = "pending" | "original";

export const CSV_COLUMNS = ["id", "name", "email", "age", "salary", "created_at", "batch_status", "batch_id"] as const;
export const CSV_HEADER = `${CSV_COLUMNS.join(",")}\n`;

const DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "users.example.org"];
const ORIGINAL_STATUSES = ["pending", "completed", "failed", "cancelled"];
const YEAR_MS = 365 * 24 * 3600 * 1000;

function emailPart(text: string): string {
  return (
    text
      .normalize("NFKD")
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "") || "user"
  );
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** "2025-03-04 05:06:07", the text form of a TIMESTAMP, in UTC. */
function timestampText(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * Yields the file's CSV text in blocks of up to `blockRows` lines with their row counts
 * (the header first, as a block of 0 rows). Emails are
 * unique because they contain the id; everything else comes from Faker seeded with
 * (seed, file index), so a file's bytes depend on nothing else. Not re-entrant: one file at a
 * time per thread.
 */
export function* userCsvBlocks(spec: FileSpec, blockRows = 1000): Generator<[text: string, rows: number]> {
  // A thread writes one file at a time, so re-seeding the one instance per file is enough.
  faker.seed([spec.seed, spec.index]);
  const to = Date.parse(spec.asOf);
  const from = to - YEAR_MS;
  yield [CSV_HEADER, 0];
  let block = "";
  let inBlock = 0;
  const lastId = spec.firstId + spec.rows - 1;
  for (let id = spec.firstId; id <= lastId; id++) {
    const first = faker.person.firstName();
    const last = faker.person.lastName();
    const name = `${first} ${last}`.slice(0, 100);
    const email = `${emailPart(first)}.${emailPart(last)}.${id}@${faker.helpers.arrayElement(DOMAINS)}`;
    const age = faker.number.int({ min: 18, max: 80 });
    const salary = faker.number.int({ min: 30_000, max: 150_000 });
    const createdAt = timestampText(faker.number.int({ min: from, max: to }));
    const original = spec.statusMix === "original";
    const status = original ? faker.helpers.arrayElement(ORIGINAL_STATUSES) : "pending";
    const batchId = original ? String(faker.number.int({ min: 1, max: 1000 })) : "";
    block += `${id},${csvField(name)},${email},${age},${salary},${createdAt},${status},${batchId}\n`;
    if (++inBlock === blockRows) {
      yield [block, inBlock];
      block = "";
      inBlock = 0;
    }
  }
  if (block) yield [block, inBlock];
}
