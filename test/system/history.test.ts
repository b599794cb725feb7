import { useTestDatabase } from "../support/database";
import { batch, seed } from "../support/processes";

describe("batch history --json", () => {
  const db = useTestDatabase({ users: 100 });

  it("gives each event's detail as it was recorded: the start's settings as an object, text as text", async () => {
    const env = { DATABASE_URL: db.url, CHUNK_SIZE: "50" };
    expect((await seed(["enqueue", "--batch-name", "told"], env)).code).toBe(0);
    expect((await batch(["pause", "told"], env)).code).toBe(0);
    await db.pool.query(
      "INSERT INTO batch_events (run_id, event, step, actor, detail) SELECT id, 'note', 'control', 'test', '{\"not\": \"parsed\"}' FROM batch_jobs",
    );
    const result = await batch(["history", "told", "--json"], env);
    expect(result.code).toBe(0);
    const { events } = JSON.parse(result.stdout);
    expect(events.map((event: { event: string }) => event.event)).toEqual(["started", "planned", "paused", "note"]);
    expect(events[0].detail).toEqual(expect.objectContaining({ chunkSize: 50, maxAttempts: 3, retryRounds: 2 }));
    expect(events[1].detail).toBeNull();
    expect(events[3].detail).toBe('{"not": "parsed"}');
  });
});
