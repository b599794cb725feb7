import { SlicePacer } from "../../src/chunks/slice-pause";

// a minute's database time per slice: the rests booked stay far in the future however slow the machine
const MINUTE_MS = 60_000;

describe("the worker's rests after slices", () => {
  it("rests one chunk's slice ratio times its database time", () => {
    const before = performance.now();
    const restsEndAt = new SlicePacer().book({ databaseMs: MINUTE_MS, ratio: 2 });
    expect(restsEndAt - before).toBeGreaterThanOrEqual(2 * MINUTE_MS);
    expect(restsEndAt - performance.now()).toBeLessThanOrEqual(2 * MINUTE_MS);
  });

  it("books the rests of chunks that end slices together one after another, not side by side", () => {
    const pacer = new SlicePacer();
    const ends = [1, 2, 3, 4].map(() => pacer.book({ databaseMs: MINUTE_MS, ratio: 1 }));
    const first = ends[0] as number;
    const gaps = ends.map((end) => Math.round(end - first));
    expect(gaps).toEqual([0, MINUTE_MS, 2 * MINUTE_MS, 3 * MINUTE_MS]);
  });

  it("does not count a rest already over towards the next", () => {
    const pacer = new SlicePacer();
    const past = pacer.book({ databaseMs: 0, ratio: 1 });
    const next = pacer.book({ databaseMs: MINUTE_MS, ratio: 0.5 });
    expect(next - past).toBeGreaterThanOrEqual(MINUTE_MS / 2);
  });
});
