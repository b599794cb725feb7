import { useTestDatabase } from "../support/database";
import { batch, seed, status } from "../support/processes";
import { runByName } from "../support/runs";

describe("naming a run on the command line", () => {
  const db = useTestDatabase({ users: 100 });
  beforeAll(async () => {
    // run 1 "first", run 2 "nightly", run 3 named "2": each cancelled before the next starts
    for (const name of ["first", "nightly", "2"]) {
      const started = await seed(["enqueue", "--batch-name", name], { DATABASE_URL: db.url });
      const { run } = JSON.parse(started.stdout);
      expect((await batch(["cancel", `#${run}`], { DATABASE_URL: db.url })).code).toBe(0);
    }
  });

  const env = () => ({ DATABASE_URL: db.url });

  it("refuses a number that is one run's name and another run's id, naming both", async () => {
    const named = await runByName(db.pool, "2");
    expect(named.id).toBe(3);
    const ambiguous = 'error: "2" is the name of batch run 3 and the id of batch run 2 ("nightly"): say #3 or #2';
    for (const result of [
      await status(["2"], env()),
      await batch(["history", "2"], env()),
      await batch(["resume", "2"], env()),
    ]) {
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(ambiguous);
    }
  });

  it("takes #id for an id, always", async () => {
    const byId = await status(["#2", "--json"], env());
    expect(byId.code).toBe(0);
    expect(JSON.parse(byId.stdout)).toMatchObject({ id: 2, name: "nightly" });
    const named = await status(["#3", "--json"], env());
    expect(JSON.parse(named.stdout)).toMatchObject({ id: 3, name: "2" });
    const history = await batch(["history", "#2", "--json"], env());
    expect(JSON.parse(history.stdout)).toMatchObject({ run: 2, batch: "nightly" });
    const missing = await status(["#9"], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: no batch run is named or numbered "#9"');
  });

  it("still takes a bare number for an id when no run has that name, and a name for its run", async () => {
    expect(JSON.parse((await status(["1", "--json"], env())).stdout)).toMatchObject({ id: 1, name: "first" });
    expect(JSON.parse((await status(["nightly", "--json"], env())).stdout)).toMatchObject({ id: 2 });
    // run 3 is named "2" and there is no run 4: its name alone is unambiguous once run 2 is gone
    await db.pool.query("DELETE FROM batch_jobs WHERE id = 2");
    expect(JSON.parse((await status(["2", "--json"], env())).stdout)).toMatchObject({ id: 3, name: "2" });
  });

  it("refuses to start a run whose name looks like an id reference", async () => {
    const result = await seed(["enqueue", "--batch-name", "#5"], env());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: a batch name cannot be "#" and digits ("#5"): #N names run N');
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM batch_jobs WHERE batch_name = '#5'");
    expect(rows[0].n).toBe(0);
  });
});
