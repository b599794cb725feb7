import {
  MAX_SLICE_ROWS,
  nextSliceLimit,
  type SettledSlices,
  SliceSizer,
  slicePart,
} from "../../src/chunks/slice-sizer";
import type { TokenSource } from "../../src/processing/rate-limit";
import { SliceTokens } from "../../src/processing/token-wait";

describe("slice sizing", () => {
  const full = (rows: number) => ({ claimed: rows, done: rows });

  it("grows fast slices, at most doubling, up to MAX_SLICE_ROWS", () => {
    expect(nextSliceLimit(1000, full(1000), 100, 32, 1000)).toBe(2000);
    expect(nextSliceLimit(4000, full(4000), 10, 32, 1000)).toBe(MAX_SLICE_ROWS);
  });

  it("shrinks slow slices, at most halving, never under one wave of records", () => {
    expect(nextSliceLimit(1000, full(1000), 1250, 32, 1000)).toBe(800);
    expect(nextSliceLimit(1000, full(1000), 60_000, 32, 1000)).toBe(500);
    expect(nextSliceLimit(40, full(40), 60_000, 32, 1000)).toBe(32);
  });

  it("sizes from the rows processed when the time budget cut the slice short", () => {
    expect(nextSliceLimit(1000, { claimed: 1000, done: 600 }, 1000, 32, 1000)).toBe(600);
  });

  it("keeps the size when the range ran out of rows", () => {
    expect(nextSliceLimit(1000, { claimed: 10, done: 10 }, 5, 32, 1000)).toBe(1000);
  });

  it("claims a part at a time only once records wait on I/O, at least four waves of records", () => {
    expect(slicePart(1000, 8, 0.5)).toBeUndefined();
    expect(slicePart(1000, 8, 1)).toBe(125);
    expect(slicePart(1000, 64, 20)).toBe(256);
  });
});

describe("a chunk's slice sizer", () => {
  it("starts at one wave of records, at least 100 rows, claimed whole, when the job's slices settled nowhere", () => {
    const sizer = new SliceSizer(8, 50, { job: "users", slices: new Map() });
    expect(sizer.limit).toBe(100);
    expect(sizer.part()).toBeUndefined();
    expect(new SliceSizer(64, 50, { job: "users", slices: undefined }).limit).toBe(256);
  });

  it("starts where the job's slices settled, a part at a time when its records waited on I/O", () => {
    const slices = new Map<string, SettledSlices>([["users", { rows: 1234, recordMs: 20 }]]);
    const sizer = new SliceSizer(8, 50, { job: "users", slices });
    expect(sizer.limit).toBe(1234);
    expect(sizer.part()).toBe(155);
  });

  it("halves after a slice that committed at its bound with no record done, never under one wave", () => {
    const sizer = new SliceSizer(32, 50, { job: "users", slices: undefined });
    sizer.shrinkAfterNoneDone(100);
    expect(sizer.limit).toBe(50);
    sizer.shrinkAfterNoneDone(50);
    expect(sizer.limit).toBe(32);
  });

  it("records where a committed slice left the size, for the job's next chunk", () => {
    const slices = new Map<string, SettledSlices>();
    const sizer = new SliceSizer(8, 50, { job: "users", slices });
    // a slice that found fewer rows than its limit keeps the size
    sizer.committed({ claimed: 10, done: 10, claimMs: 0, writeMs: 0 }, 100, performance.now());
    expect(slices.get("users")).toEqual({ rows: 100, recordMs: expect.any(Number) });
    expect(sizer.limit).toBe(100);
  });
});

/** Tokens from a stock, handed out at once; what is given back is kept, for the test to see. */
class TokenStock implements TokenSource {
  givenBack = 0;
  constructor(private stock: number) {}
  take(most: number, wanted: () => boolean): number | Promise<number> {
    const granted = wanted() ? Math.min(most, this.stock) : 0;
    this.stock -= granted;
    return granted === 0 ? Promise.resolve(0) : granted;
  }
  giveBack(count: number): void {
    this.givenBack += count;
    this.stock += count;
  }
}

describe("a chunk's slices taking tokens", () => {
  it("without a rate limit, runs the slice at once with its whole limit and no wait to count", async () => {
    const tokens = new SliceTokens(undefined);
    const seen = await tokens.withTokens(
      500,
      () => true,
      async (limit, prepaid, waitSeconds) => ({
        waitCounted: 0,
        limit,
        prepaid,
        waitSeconds,
      }),
    );
    expect(seen).toEqual({ waitCounted: 0, limit: 500, prepaid: undefined, waitSeconds: 0 });
  });

  it("claims only as many rows as it holds tokens, and gives back those its records did not use", async () => {
    const stock = new TokenStock(30);
    const tokens = new SliceTokens(stock);
    const limit = await tokens.withTokens(
      100,
      () => true,
      async (granted, prepaid) => {
        if (prepaid) prepaid.left -= 12;
        return { waitCounted: 0, granted };
      },
    );
    expect(limit).toEqual({ waitCounted: 0, granted: 30 });
    expect(stock.givenBack).toBe(18);
  });

  it("runs no slice when it is no longer wanted once tokens are at hand", async () => {
    const tokens = new SliceTokens(new TokenStock(0));
    let ran = false;
    const result = await tokens.withTokens(
      100,
      () => false,
      async () => {
        ran = true;
        return { waitCounted: 0 };
      },
    );
    expect(result).toBeUndefined();
    expect(ran).toBe(false);
  });

  it("hands a wait no slice counted to the next slice", async () => {
    // tokens granted after a wait, however short
    const waited: TokenSource = {
      take: (most) => new Promise((granted) => setImmediate(() => granted(most))),
      giveBack: () => undefined,
    };
    const tokens = new SliceTokens(waited);
    const handed: number[] = [];
    const slice = (counts: boolean) => async (_limit: number, _prepaid: unknown, waitSeconds: number) => {
      handed.push(waitSeconds);
      return { waitCounted: counts ? waitSeconds : 0 };
    };
    await tokens.withTokens(10, () => true, slice(false));
    await tokens.withTokens(10, () => true, slice(true));
    expect(handed[0]).toBeGreaterThan(0);
    // the first wait, and the second's own
    expect(handed[1]).toBeGreaterThan(handed[0] as number);
  });
});
