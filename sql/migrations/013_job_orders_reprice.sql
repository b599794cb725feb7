-- The processing state of job orders-reprice (jobs/) in its table public.orders, and its
-- result columns where the table lacks them: written by `npm run jobs -- migration orders-reprice`.
-- Processing writes each row once; keep these columns out of every index, so that the write
-- is a HOT update (no index entry, no uniqueness check). A table that is mostly processed, not
-- inserted into, gains from a lower fillfactor: ALTER TABLE "public"."orders" SET (fillfactor = 70).
ALTER TABLE "public"."orders"
  ADD COLUMN IF NOT EXISTS "reprice_status" VARCHAR(20) NOT NULL DEFAULT 'pending',
  ADD COLUMN IF NOT EXISTS "reprice_attempts" INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS "reprice_error" TEXT,
  ADD COLUMN IF NOT EXISTS "reprice_run_id" INTEGER,
  ADD COLUMN IF NOT EXISTS "reprice_processed_at" TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS "tax_cents" BIGINT,
  ADD COLUMN IF NOT EXISTS "total_cents" BIGINT;

ALTER TABLE "public"."orders" DROP CONSTRAINT IF EXISTS "orders_reprice_status_check";
ALTER TABLE "public"."orders" ADD CONSTRAINT "orders_reprice_status_check"
  CHECK ("reprice_status" IN ('pending', 'completed', 'failed')) NOT VALID;
