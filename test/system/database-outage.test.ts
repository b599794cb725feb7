import { setTimeout as sleep } from "node:timers/promises";
import { useRestartingDatabase } from "../support/database-restart";

/**
 * The database away for longer than the pools wait, and behind an address that stops answering
 * (test/support/database-restart.ts has the worker, its server and what each scenario checks).
 */

describe("the database away for a while in the middle of a run", () => {
  const { server, proxy, rideOut } = useRestartingDatabase();

  it("rides out a restart longer than the pools' timeouts (connections refused for 15 s)", async () => {
    await rideOut("long-restart", async () => {
      await server().shutdown("fast");
      await sleep(15_000);
      await server().start();
    });
  }, 180_000);

  it("rides out a failover: the address answers again only a while after the new server is up", async () => {
    await rideOut("failover", async () => {
      proxy().blackhole();
      await server().shutdown("immediate");
      await sleep(6000);
      await server().start();
      await sleep(3000);
      proxy().forward();
    });
  }, 180_000);
});
