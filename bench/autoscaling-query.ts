import type pg from "pg";
import { median, round } from "./harness";

/** The trigger's query and the proof of concept's row count, timed at a large backlog, with their plans. */
export async function queryCost(pool: pg.Pool, rows: number) {
  const time = async (sql: string, times: number) => {
    const runs: number[] = [];
    for (let i = 0; i < times; i++) {
      const started = performance.now();
      await pool.query(sql);
      runs.push(performance.now() - started);
    }
    return round(median(runs), 3);
  };
  const trigger = "SELECT chunks_left FROM batch_backlog";
  const original = "SELECT COUNT(1) FROM users WHERE batch_status IN ('pending','failed')";
  const { rows: value } = await pool.query(trigger);
  const { rows: backlog } = await pool.query(
    "SELECT rows_left, (SELECT count(*) FROM batch_chunks) AS chunks FROM batch_backlog",
  );
  const { rows: plan } = await pool.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${trigger}`);
  return {
    pendingRows: rows,
    /** The trigger's value: the run's chunks, every one due. */
    value: Number(value[0].chunks_left),
    chunks: Number(backlog[0].chunks),
    rowsLeft: Number(backlog[0].rows_left),
    medianMs: await time(trigger, 20),
    originalQueryMs: await time(original, 3),
    plan: plan.map((row) => row["QUERY PLAN"] as string),
  };
}
