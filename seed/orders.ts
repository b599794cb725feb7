import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { faker } from "@faker-js/faker/locale/en";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";

/**
 * Seed data of the example job (jobs/orders-reprice.ts): reproducible orders, COPYed straight
 * into the orders table. One in fifty has a quantity of 0 (a poison row the job fails), one in
 * five is shipped or cancelled (not the job's: it takes open orders only).
 */

const CURRENCIES = ["EUR", "USD", "GBP"] as const;
const TAX_RATES = ["0.0000", "0.0700", "0.1900", "0.2000"] as const;
const ROWS_PER_CHUNK = 1000;

export interface OrdersSpec {
  rows: number;
  seed: number;
  /** The first order_id. */
  firstId: number;
}

function orderLine(id: number, placedFrom: number): string {
  const status =
    faker.number.int({ min: 1, max: 10 }) <= 8 ? "open" : faker.helpers.arrayElement(["shipped", "cancelled"]);
  const quantity = faker.number.int({ min: 1, max: 50 }) === 1 ? 0 : faker.number.int({ min: 1, max: 20 });
  const discount = faker.datatype.boolean()
    ? faker.number.float({ min: 0, max: 30, fractionDigits: 2 }).toFixed(2)
    : "\\N";
  const placedAt = new Date(placedFrom + faker.number.int({ min: 0, max: 365 * 86_400_000 })).toISOString();
  return [
    id,
    faker.number.int({ min: 1, max: 100_000 }),
    status,
    faker.helpers.arrayElement(CURRENCIES),
    quantity,
    faker.number.int({ min: 50, max: 100_000 }),
    discount,
    faker.helpers.arrayElement(TAX_RATES),
    placedAt,
  ].join("\t");
}

function* orderText(spec: OrdersSpec): Generator<string> {
  faker.seed(spec.seed);
  const placedFrom = Date.UTC(2025, 0, 1);
  for (let start = 0; start < spec.rows; start += ROWS_PER_CHUNK) {
    const lines: string[] = [];
    for (let i = start; i < Math.min(start + ROWS_PER_CHUNK, spec.rows); i++) {
      lines.push(orderLine(spec.firstId + i, placedFrom));
    }
    yield `${lines.join("\n")}\n`;
  }
}

/** Loads `rows` generated orders; the same seed gives the same orders. */
export async function seedOrders(pool: pg.Pool, spec: OrdersSpec): Promise<{ rows: number; open: number }> {
  const client = await pool.connect();
  try {
    await pipeline(
      Readable.from(orderText(spec)),
      client.query(
        copyFrom(
          "COPY orders (order_id, customer_id, status, currency, quantity, unit_price_cents, discount_pct, tax_rate, placed_at) FROM STDIN",
        ),
      ),
    );
    const { rows } = await client.query<{ open: number }>(
      "SELECT count(*)::int AS open FROM orders WHERE status = 'open' AND order_id BETWEEN $1 AND $2",
      [spec.firstId, spec.firstId + spec.rows - 1],
    );
    return { rows: spec.rows, open: rows[0]?.open ?? 0 };
  } finally {
    client.release();
  }
}
