-- The example job's table (jobs/orders-reprice.ts): orders, standing for a table a user brings.
-- Nothing of pg-batch is in it; the job's state and result columns are added by the migration
-- `npm run jobs -- migration orders-reprice` wrote (013). `npm run seed -- orders` fills it.
CREATE TABLE orders (
  order_id BIGINT PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'shipped', 'cancelled')),
  currency CHAR(3) NOT NULL,
  quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  -- a percentage off the line, when the order has one
  discount_pct NUMERIC(5, 2),
  tax_rate NUMERIC(5, 4) NOT NULL,
  placed_at TIMESTAMPTZ NOT NULL
);

-- What the example's afterRun writes when a run ends, in the transaction that ends it: once.
CREATE TABLE order_reprice_reports (
  run_id INTEGER PRIMARY KEY,
  status TEXT NOT NULL,
  orders_repriced BIGINT NOT NULL,
  total_cents BIGINT NOT NULL,
  written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
