import path from "node:path";
import type { PoolClient } from "pg";
import type { WithClient } from "../db/pool";
import { KEEP_TEXT } from "../db/types";
import { ClaimedRows } from "../jobs/claimed-rows";
import type { JobDefinition } from "../jobs/define";
import { jobSql, type RowScope } from "../jobs/job-sql";
import { checkParams, type GivenParams } from "../jobs/params";
import { encodeResult, type ResultElement } from "../jobs/results";
import type { RunSubset } from "../runs/model";
import { loadRunKeys } from "../runs/run-keys";
import { insertRehearsalRun } from "../runs/runs";
import { describeSubset } from "../runs/subset";
import { formatCount } from "../terminal/format";
import { table } from "../terminal/output";
import { processRecords } from "./process-records";
import type { RateLimiter } from "./rate-limit";

/**
 * A dry run: the job's function over a sample of the rows a run would take, their outcomes
 * reported and nothing written. The rows are read without a lock, in one statement
 * (JobSql.sampleOpenRows); no run is recorded, so a real run starts as if there had been none.
 */

/** Rows a dry run samples unless told otherwise. */
export const DEFAULT_DRY_RUN_SAMPLE = 200;

/** Results shown, and keys named per error, at most. */
const SHOWN = 5;

export interface DryRunOptions {
  sample: number;
  /** Rows failed this many times are not a run's: the run's MAX_ATTEMPTS. */
  maxAttempts: number;
  concurrency: number;
  timeoutMs: number;
  /** The parameters given, as a run would be started with them: checked, then every record's `ctx.params`. */
  params?: GivenParams;
  /** The job's rate limit, when it has one: a dry run's calls count against the same quota. */
  limiter?: RateLimiter;
  /**
   * The part of the job's rows a run would take: a key range (inclusive, either end alone;
   * decimal text) or a file's keys (its path); the sample is of its rows.
   */
  subset?: { from?: string; to?: string } | { keysPath: string };
}

export interface DryRunReport {
  job: string;
  dryRun: true;
  /** The rows sampled from: "all the job's rows", or a key range. */
  rows: string;
  sampled: number;
  wouldComplete: number;
  wouldFail: number;
  /** Failures grouped by message, most frequent first, with a few of their keys. */
  errors: { error: string; count: number; keys: string[] }[];
  /** The first few rows that would complete: key and the result columns it would write. */
  results: { key: string; result: Record<string, ResultElement> }[];
  seconds: number;
  recordsPerSecond: number;
  rowConcurrency: number;
  rowTimeoutMs: number;
  rateLimitPerSecond: number | null;
}

/**
 * The sample's rows, and the subset they are of. A range stands alone (run 0 names no run's
 * keys); a file's keys are loaded as those of a run that never commits, in one transaction
 * with the sample's read, rolled back.
 */
async function readSample(
  db: WithClient,
  job: JobDefinition,
  options: DryRunOptions,
): Promise<{ rows: ClaimedRows; subset: RunSubset | undefined }> {
  const read = async (client: PoolClient, scope?: RowScope) => {
    const sql = jobSql(job, scope);
    const { rows: fields } = await client.query<(string | null)[]>({
      text: sql.sampleOpenRows,
      values: [options.sample, options.maxAttempts, ...sql.filterValues],
      rowMode: "array",
      types: KEEP_TEXT,
    });
    const rows = new ClaimedRows();
    for (const row of fields) sql.readClaimedRow(row, rows);
    return rows;
  };
  const asked = options.subset;
  if (!asked || !("keysPath" in asked)) {
    return { rows: await db((client) => read(client, asked && { runId: 0, subset: asked })), subset: asked };
  }
  return db(async (client) => {
    await client.query("BEGIN");
    try {
      const runId = await insertRehearsalRun(client, job.name);
      const subset = {
        keysFile: path.basename(asked.keysPath),
        keys: await loadRunKeys(client, runId, asked.keysPath),
      };
      return { rows: await read(client, { runId, subset }), subset };
    } finally {
      await client.query("ROLLBACK");
    }
  });
}

/** Reads the sample and runs the job's function on each of its records; writes nothing. */
export async function dryRun(db: WithClient, job: JobDefinition, options: DryRunOptions): Promise<DryRunReport> {
  const params = checkParams(job, options.params);
  const { rows, subset } = await readSample(db, job, options);
  const started = performance.now();
  const outcomes = await processRecords(rows, job.process, {
    // no run: the records' idempotency keys name run 0
    runId: 0,
    params,
    concurrency: options.concurrency,
    timeoutMs: options.timeoutMs,
    signal: new AbortController().signal,
    mayStart: () => true,
    tokens: options.limiter,
  });
  const seconds = (performance.now() - started) / 1000;
  await options.limiter?.close();

  const errors = new Map<string, string[]>();
  const results: DryRunReport["results"] = [];
  const elements: ResultElement[] = [];
  outcomes.forEach((outcome, index) => {
    const key = rows.keys[index] as string;
    const refused = outcome.status === "completed" ? encodeResult(job.writes, outcome.result, elements) : undefined;
    const error = outcome.status === "failed" ? outcome.error : refused;
    if (error !== undefined) {
      errors.set(error, [...(errors.get(error) ?? []), key]);
    } else if (results.length < SHOWN) {
      const result = Object.fromEntries(job.writes.map((column, i) => [column.column, elements[i] ?? null]));
      results.push({ key, result });
    }
  });
  const failed = [...errors.values()].reduce((sum, keys) => sum + keys.length, 0);
  return {
    job: job.name,
    dryRun: true,
    rows: describeSubset(subset),
    sampled: outcomes.length,
    wouldComplete: outcomes.length - failed,
    wouldFail: failed,
    errors: [...errors]
      .map(([error, keys]) => ({ error, count: keys.length, keys: keys.slice(0, SHOWN) }))
      .sort((a, b) => b.count - a.count),
    results,
    seconds: Number(seconds.toFixed(3)),
    recordsPerSecond: seconds > 0 ? Math.round(outcomes.length / seconds) : 0,
    rowConcurrency: options.concurrency,
    rowTimeoutMs: options.timeoutMs,
    rateLimitPerSecond: options.limiter?.limit.perSecond ?? null,
  };
}

/** The report for a person: what would happen, the errors by message, a few results. */
export function renderDryRun(report: DryRunReport): string {
  const limit = report.rateLimitPerSecond === null ? "" : `, rate limit ${report.rateLimitPerSecond}/s`;
  const lines = [
    `dry run of job ${report.job}: ${formatCount(report.sampled)} sampled rows of ${report.rows}, nothing written`,
    `  would complete ${formatCount(report.wouldComplete)}, would fail ${formatCount(report.wouldFail)}`,
    `  ${formatCount(report.recordsPerSecond)} records/s (${report.seconds} s, ${report.rowConcurrency} at a time, ` +
      `timeout ${report.rowTimeoutMs} ms${limit})`,
  ];
  if (report.errors.length > 0) {
    lines.push("", "errors:");
    const errorRows = report.errors.map((e) => [String(e.count), e.error, e.keys.join(" ")]);
    lines.push(table(["rows", "error", "keys"], errorRows));
  }
  if (report.results.length > 0) {
    lines.push("", "results:");
    const columns = Object.keys(report.results[0]?.result ?? {});
    const resultRows = report.results.map((r) => [r.key, ...columns.map((c) => JSON.stringify(r.result[c]))]);
    lines.push(table(["key", ...columns], resultRows));
  }
  return `${lines.join("\n")}\n`;
}
