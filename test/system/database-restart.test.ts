import { setTimeout as sleep } from "node:timers/promises";
import { useRestartingDatabase } from "../support/database-restart";

/**
 * The database going away for a moment (test/support/database-restart.ts has the worker, its
 * server and what each scenario checks); database-outage.test.ts has the longer outages.
 */

describe("the database going away in the middle of a run", () => {
  const { server, rideOut } = useRestartingDatabase();

  it("rides out a fast shutdown and restart (sessions end with 57P01)", async () => {
    await rideOut("fast-restart", async () => {
      await server().shutdown("fast");
      await server().start();
    });
  });

  it("rides out a crash (immediate shutdown) and the recovery that follows (57P03 while starting up)", async () => {
    await rideOut("crash", async () => {
      await server().shutdown("immediate");
      await server().start();
    });
  });

  it("rides out a slow shutdown: new sessions refused while it waits (57P03), then ended (57P01)", async () => {
    await rideOut("slow-shutdown", async () => {
      const smart = server().shutdown("smart");
      await sleep(1000);
      await server().shutdown("fast");
      await smart;
      await server().start();
    });
  });
});
