import { column, defineJob, z } from "#pg-batch";

/**
 * The example of a job of one's own (docs/jobs.md): recomputes the tax and the
 * total of every open order, in integer cents, over a table with a key of another name and
 * result columns of its own (sql/migrations/012_example_orders.sql; its state and result columns
 * come from the generated 013_job_orders_reprice.sql). Orders with a quantity below 1 fail:
 * poison rows, tried MAX_ATTEMPTS times and then left failed with their error. A run may change
 * every unit price by a percentage first: `seed enqueue --job orders-reprice --param priceChangePct=10`.
 */

/** A NUMERIC's text ("12.50") in hundredths (1250), without floating point. */
function hundredths(text: string): bigint {
  const [whole = "0", fraction = ""] = text.split(".");
  return BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0").slice(0, 2));
}

/** A NUMERIC's text in ten-thousandths. */
function tenThousandths(text: string): bigint {
  const [whole = "0", fraction = ""] = text.split(".");
  return BigInt(whole) * 10_000n + BigInt(fraction.padEnd(4, "0").slice(0, 4));
}

/** Rounds a / b to the nearest whole number, halves away from zero. */
const divideRounded = (a: bigint, b: bigint) => (2n * a + b) / (2n * b);

export default defineJob({
  name: "orders-reprice",
  description: "recompute the tax and total of every open order",
  table: "orders",
  key: "order_id",
  where: { status: "open" },
  reads: {
    quantity: column.integer(),
    unitPriceCents: column.integer("unit_price_cents"),
    discountPct: column.numeric("discount_pct").nullable(),
    taxRate: column.numeric("tax_rate"),
  },
  writes: {
    taxCents: column.bigint("tax_cents"),
    totalCents: column.bigint("total_cents"),
  },
  state: "reprice",
  defaults: { chunkSize: 5_000, maxAttempts: 2 },
  params: z.object({
    priceChangePct: z
      .number()
      .int()
      .min(-90)
      .max(100)
      .default(0)
      .describe("percent added to every unit price before the total (-90 to 100)"),
  }),
  async process(order, { params }) {
    if (order.quantity < 1) throw new Error(`quantity must be at least 1, got ${order.quantity}`);
    // the changed price of all the order's units, rounded to the cent once
    const gross = divideRounded(
      BigInt(order.quantity) * BigInt(order.unitPriceCents) * BigInt(100 + params.priceChangePct),
      100n,
    );
    const discount = divideRounded(gross * hundredths(order.discountPct ?? "0"), 10_000n);
    const net = gross - discount;
    const tax = divideRounded(net * tenThousandths(order.taxRate), 10_000n);
    return { taxCents: Number(tax), totalCents: Number(net + tax) };
  },
  async beforeRun({ query }) {
    const [open] = await query<{ orders: number }>("SELECT count(*)::int AS orders FROM orders WHERE status = 'open'");
    return { openOrders: open?.orders ?? 0 };
  },
  async afterRun({ run, query }) {
    await query(
      `INSERT INTO order_reprice_reports (run_id, status, orders_repriced, total_cents)
       SELECT $1, $2, count(*), coalesce(sum(total_cents), 0) FROM orders WHERE reprice_run_id = $1 AND reprice_status = 'completed'
       ON CONFLICT (run_id) DO NOTHING`,
      [run.id, run.status],
    );
    return { report: run.id };
  },
});
