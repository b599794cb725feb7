import {
  autoscale,
  LONGEST_RUN_S,
  ONE_SECOND_POLLS,
  UP_TO_THE_CAP_MS,
  useAutoscalerDatabase,
} from "../support/autoscaler";
import { runByName } from "../support/runs";

/**
 * The local autoscaler through faults: pods that start late, never or freeze, a retry round's
 * wait, the database restarted. Apart from test/system/autoscaler.test.ts so that the two run
 * side by side.
 */

describe("the local autoscaler against a database, through faults", () => {
  const { db, scaleRunToCompletion } = useAutoscalerDatabase();

  it(
    "rides out an image pulled slowly, a pod that never starts and a lost node: exact books, no backoffLimit spent",
    async () => {
      // 20 chunks, each waiting on its records about as long as 1,000 rows at 1 ms
      const rows = 8000;
      const summary = await scaleRunToCompletion("faults", rows, { CHUNK_SIZE: "400" }, [
        "--env",
        "PROCESS_DELAY_MS=3",
        "--env",
        "WORKER_DEAD_AFTER_S=2",
        "--pull-delay",
        "0.5",
        "--never-start",
        "1",
        "--freeze",
        "1@2",
        // past the run's end: the stuck pod's Job holds its place until then, the others finish first
        "--active-deadline",
        "20",
        "--toleration-seconds",
        "2",
        "--until-idle",
        "3",
      ]);
      expect(summary.stoppedBecause).toBe("idle");
      // the pod that never started: its Job counted as running until its deadline failed it
      const stuck = summary.pods.filter((pod: any) => pod.neverRan);
      expect(stuck).toHaveLength(1);
      expect(stuck[0]).toMatchObject({ jobs: 0, exit: "SIGTERM" });
      // its Job's deadline runs from the Job's creation, after the timeline's start and before the
      // pod's: the pod ended no sooner than 20 s into the run (less the rounding of both figures)
      expect(stuck[0].startedAt + stuck[0].seconds).toBeGreaterThanOrEqual(20 - 0.1);
      // the frozen pod: evicted (SIGKILL, DisruptionTarget), its chunks back through the workers' liveness
      expect(summary.timeline.flatMap((poll: any) => poll.faults)).toContain("froze 1 pod(s) (node lost)");
      const evicted = summary.pods.filter((pod: any) => pod.conditions?.includes("DisruptionTarget"));
      expect(evicted).toHaveLength(1);
      expect(evicted[0].exit).toBe("SIGKILL");
      // the Ignore rule: its Job's next pod at once, its backoffLimit untouched (no Job failed by it)
      expect(summary.pods.length).toBeGreaterThan(2);
    },
    UP_TO_THE_CAP_MS,
  );

  it(
    "starts no pod while a retry round waits for its delay",
    async () => {
      const rows = 8000;
      const summary = await scaleRunToCompletion(
        "retried",
        rows,
        { CHUNK_SIZE: "400", RETRY_DELAY_S: "3", MAX_ATTEMPTS: "2" },
        [
          ...["--env", "PROCESS_DELAY_MS=5", "--env", "FAIL_RATE=0.1", "--env", "FAIL_FIRST_ATTEMPTS=1"],
          // longer than the retry delay: the query reads 0 while the round waits
          ...["--until-idle", "6"],
        ],
      );
      expect((await runByName(db.pool, "retried")).round).toBe(1);
      expect(summary.stoppedBecause).toBe("idle");
      // a pod for each round, each of which found work
      expect(summary.podsStarted).toBeGreaterThanOrEqual(2);
      expect(summary.podsIdle).toBe(0);
      // the wait shows as polls reading 0, after which the retry round got its pod
      const waitStart = summary.timeline.findIndex((poll: any) => poll.query === 0);
      expect(summary.timeline.slice(waitStart).some((poll: any) => poll.started > 0)).toBe(true);
    },
    UP_TO_THE_CAP_MS,
  );
});

describe("the local autoscaler with its embedded database", () => {
  it(
    "rides out a restart of the database mid-run: no pod started on a failed query, the run completed",
    async () => {
      // 60 chunks, each waiting on its records as long as 1,000 rows at 10 ms: running when the database stops
      const rows = 12_000;
      const summary = await autoscale(
        [
          "k8s/overlays/local",
          "--embedded",
          ...["--rows", String(rows), "--env", "CHUNK_SIZE=200", "--env", "PROCESS_DELAY_MS=50"],
          ...["--restart-database-at", "2", "--database-down-for", "3"],
          ...ONE_SECOND_POLLS,
          ...["--until-idle", "2", "--duration", LONGEST_RUN_S],
        ],
        {},
      );
      expect(summary.runs).toEqual([
        { name: "users-batch", status: "completed", total: rows, completed: rows, failed: 0 },
      ]);
      expect(summary.stoppedBecause).toBe("idle");
      const failed = summary.timeline.filter((poll: any) => poll.query === null);
      expect(failed.length).toBeGreaterThan(0);
      for (const poll of failed) expect(poll.started).toBe(0);
      expect(summary.timeline.some((poll: any) => poll.faults.includes("database restart"))).toBe(true);
    },
    UP_TO_THE_CAP_MS,
  );
});
