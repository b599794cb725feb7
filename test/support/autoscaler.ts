import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readWorkload, renderOverlay, type ScaledJobWorkload } from "../../autoscaler/manifests";
import { insertUsers, statusCounts, type TestDatabase, useTestDatabase } from "./database";
import { type Finished, lastJsonLine, ROOT, run, seed } from "./processes";
import { lockedJobs, runByName } from "./runs";

/**
 * The local autoscaler (autoscaler/cli.ts) run as a separate process against a test database,
 * for test/system/autoscaler*.test.ts.
 */

const AUTOSCALER = path.join(ROOT, "dist/autoscaler/cli.js");
export const LOCAL = path.join(ROOT, "k8s/overlays/local");

export const ONE_SECOND_POLLS = ["--polling-interval", "1"];
/**
 * The autoscaler's cap on a run that should end by itself (--until-idle): far beyond what a
 * quiet machine needs (under 30 s), so that a loaded one finishes too; a run stopped by the cap
 * fails the test on `stoppedBecause`, never on a time.
 */
export const LONGEST_RUN_S = "240";
/** The jest timeout of a test that runs the autoscaler up to its cap. */
export const UP_TO_THE_CAP_MS = 300_000;

/** The autoscaler's CLI as a separate process, its pods' logs in a directory of their own. */
export async function autoscale(args: string[], env: Record<string, string | undefined>) {
  const podLogs = fs.mkdtempSync(path.join(os.tmpdir(), "autoscaler-test-"));
  try {
    const result: Finished = await run(process.execPath, [AUTOSCALER, ...args, "--pod-logs", podLogs], env);
    if (result.code !== 0) throw new Error(`the autoscaler exited ${result.code}:\n${result.stderr}`);
    const summary = lastJsonLine(result.stdout) as Record<string, any>;
    for (const pod of summary.pods) expect(fs.existsSync(path.join(podLogs, `${pod.pod}.log`))).toBe(true);
    return summary;
  } finally {
    fs.rmSync(podLogs, { recursive: true, force: true });
  }
}

/** The local overlay's ScaledJob, as the autoscaler reads it. */
export function localScaledJob(): ScaledJobWorkload {
  const workload = readWorkload(renderOverlay(LOCAL));
  if (workload.kind !== "ScaledJob") throw new Error("the local overlay has no ScaledJob");
  return workload;
}

/** A migrated database for each test of a describe, with runs enqueued and checked on it. */
export function useAutoscalerDatabase() {
  const db: TestDatabase = useTestDatabase({ each: true });

  async function enqueue(name: string, rows: number, env: Record<string, string> = {}) {
    const enqueued = await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url, ...env });
    expect(enqueued.code).toBe(0);
    expect(lastJsonLine(enqueued.stdout)).toMatchObject({ batch: name, rows });
  }

  async function expectCompleted(name: string, rows: number) {
    expect(await runByName(db.pool, name)).toMatchObject({
      status: "completed",
      total_records: rows,
      processed_records: rows,
      failed_records: 0,
      retryable_records: 0,
    });
    expect(await statusCounts(db.pool)).toEqual({ completed: rows });
    expect(await lockedJobs(db.pool)).toBe(0);
  }

  /**
   * Adds `rows` users, enqueues them as run `name` (`env` for the enqueue), runs the autoscaler
   * on the local overlay polling each second with `flags` up to its cap, and checks the run's
   * books; resolves with the autoscaler's summary.
   */
  async function scaleRunToCompletion(name: string, rows: number, env: Record<string, string>, flags: string[]) {
    await insertUsers(db.pool, rows);
    await enqueue(name, rows, env);
    const summary = await autoscale(
      ["k8s/overlays/local", ...ONE_SECOND_POLLS, ...flags, "--duration", LONGEST_RUN_S],
      { DATABASE_URL: db.url },
    );
    await expectCompleted(name, rows);
    return summary;
  }

  return { db, enqueue, expectCompleted, scaleRunToCompletion };
}
