import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { taskList } from "../../app/task-list";
import { ClaimedRows } from "../../src/jobs/claimed-rows";
import { encodeResult, type ResultElement } from "../../src/jobs/results";
import { failsOnAttempt, recordDelayMs, withInjectedFaults } from "../../src/processing/fault-injection";
import { type ProcessRecordsOptions, processRecords, type RecordFunction } from "../../src/processing/process-records";
import { usersJob } from "../support/jobs";
import { ROOT } from "../support/processes";

interface User {
  id: number;
  name: string;
  email: string;
}

/** Adds the users job's row number `i` (from 0) to `rows`, as a slice claims it. */
function addRow(rows: ClaimedRows, i: number): void {
  rows.records.push({
    id: i + 1,
    name: `User ${i + 1}`,
    email: `user.${i + 1}@example.com`,
    age: 30,
    salary: 50_000,
    createdAt: "2025-06-01 12:00:00",
  });
  rows.keys.push(String(i + 1));
  rows.statuses.push("pending");
  rows.runs.push(null);
  rows.attempts.push(i % 3);
}

/** Rows as a users job's slice claims them. */
function records(count: number): ClaimedRows {
  const rows = new ClaimedRows();
  for (let i = 0; i < count; i++) addRow(rows, i);
  return rows;
}

const options = (overrides: Partial<ProcessRecordsOptions> = {}): ProcessRecordsOptions => ({
  runId: 9,
  concurrency: 4,
  timeoutMs: 1000,
  signal: new AbortController().signal,
  mayStart: () => true,
  ...overrides,
});

describe("processRecords", () => {
  it("runs at most `concurrency` records at once and gives every record an outcome in order", async () => {
    let running = 0;
    let most = 0;
    const logic: RecordFunction = async (record) => {
      const user = record as unknown as User;
      running++;
      most = Math.max(most, running);
      await sleep(2);
      running--;
      if (user.id % 5 === 0) throw new Error(`bad ${user.id}`);
      return { emailNormalized: user.email, segment: String(user.id) };
    };
    const outcomes = await processRecords(records(40), logic, options());
    expect(most).toBe(4);
    expect(outcomes).toHaveLength(40);
    expect(outcomes[0]).toEqual({
      status: "completed",
      result: { emailNormalized: "user.1@example.com", segment: "1" },
    });
    expect(outcomes[4]).toEqual({ status: "failed", error: "bad 5" });
  });

  it("starts a record on each token its slice took before claiming, and takes one with rows locked only past them", async () => {
    const takes: { most: number; rowsLocked: boolean | undefined }[] = [];
    let givenBack = 0;
    const tokens = {
      take: (most: number, _wanted: () => boolean, rowsLocked?: boolean) => {
        takes.push({ most, rowsLocked });
        return Promise.resolve(1);
      },
      giveBack: (count: number) => {
        givenBack += count;
      },
    };
    // as many tokens as rows: none taken while they run
    const prepaid = { left: 6 };
    expect(await processRecords(records(6), async () => ({}), options({ tokens, prepaid }))).toHaveLength(6);
    expect({ takes, left: prepaid.left, givenBack }).toEqual({ takes: [], left: 0, givenBack: 0 });
    // more rows than tokens: each record past them waits for one, with its row locked (one lane:
    // lanes that wait at once for the last row take a token each, and give back those unused)
    const short = { left: 2 };
    const oneLane = options({ tokens, prepaid: short, concurrency: 1 });
    expect(await processRecords(records(5), async () => ({}), oneLane)).toHaveLength(5);
    expect({ takes, givenBack }).toEqual({
      takes: Array.from({ length: 3 }, () => ({ most: 1, rowsLocked: true })),
      givenBack: 0,
    });
    // fewer rows than tokens: the rest are left to the slice, which gives them back
    const spare = { left: 9 };
    await processRecords(records(4), async () => ({}), options({ tokens, prepaid: spare }));
    expect(spare.left).toBe(5);
  });

  it("gives each record its attempt number and an idempotency key of run, row and attempt", async () => {
    const seen: string[] = [];
    await processRecords(
      records(3),
      async (user, ctx) => {
        seen.push(`${user.id}:${ctx.attempt}:${ctx.idempotencyKey}`);
        return { emailNormalized: "", segment: "" };
      },
      options(),
    );
    expect(seen.sort()).toEqual(["1:1:9:1:1", "2:2:9:2:2", "3:3:9:3:3"]);
  });

  it("fails a record that outlives its timeout, and aborts its signal", async () => {
    let aborted = false;
    const outcomes = await processRecords(
      records(2),
      async (user, ctx) => {
        if (user.id === 1) {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          aborted = true;
        }
        return { emailNormalized: "", segment: "" };
      },
      options({ timeoutMs: 50 }),
    );
    expect(outcomes[0]).toEqual({ status: "failed", error: "timed out after 50 ms" });
    expect(outcomes[1]?.status).toBe("completed");
    expect(aborted).toBe(true);
  });

  it("starts each record once, none past the last, when lanes finish together and the feed adds more", async () => {
    const rows = records(3);
    let grown = false;
    const seen: number[] = [];
    const outcomes = await processRecords(
      rows,
      async (user) => {
        seen.push(user.id as number);
        return { emailNormalized: "", segment: "" };
      },
      options({
        concurrency: 2,
        feed: {
          // the next part arrives at once, as a claim that has already run
          more: async (length) => {
            if (rows.length <= length && !grown) {
              for (const i of [3, 4, 5]) addRow(rows, i);
              grown = true;
            }
            return rows.length > length;
          },
          started: () => undefined,
          settled: () => undefined,
        },
      }),
    );
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(outcomes).toHaveLength(6);
    expect(outcomes.every((outcome) => outcome.status === "completed")).toBe(true);
  });

  it("never runs the job's function for a record whose injected delay outlived its timeout", async () => {
    const ran: number[] = [];
    const logic: RecordFunction = async (user) => {
      ran.push(user.id as number);
      return { emailNormalized: "", segment: "" };
    };
    const faults = { delayMs: 200, failRate: 0, failFirstAttempts: undefined };
    const outcomes = await processRecords(
      records(2),
      withInjectedFaults(logic, "id", faults),
      options({ timeoutMs: 20 }),
    );
    expect(outcomes).toEqual([
      { status: "failed", error: "timed out after 20 ms" },
      { status: "failed", error: "timed out after 20 ms" },
    ]);
    // the delays end after their records were given up: the function must not run then
    await sleep(400);
    expect(ran).toEqual([]);
  });

  it("starts no record once mayStart says stop, returning the outcomes of those started", async () => {
    let started = 0;
    const outcomes = await processRecords(
      records(20),
      async () => {
        started++;
        return { emailNormalized: "", segment: "" };
      },
      options({ concurrency: 2, mayStart: () => started < 7 }),
    );
    expect(outcomes).toHaveLength(started);
    expect(started).toBeGreaterThanOrEqual(7);
    expect(started).toBeLessThanOrEqual(8);
  });

  it("rejects when its signal aborts, abandoning records that never settle", async () => {
    const controller = new AbortController();
    const pending = processRecords(
      records(5),
      () => new Promise(() => undefined),
      options({ signal: controller.signal }),
    );
    setTimeout(() => controller.abort(new Error("grace ran out")), 20);
    await expect(pending).rejects.toThrow("grace ran out");
  });
});

describe("processRecords, whatever the job's function does", () => {
  const throwing = (thrown: () => unknown): RecordFunction =>
    (async () => {
      throw thrown();
    }) as RecordFunction;
  const proxyThatThrows = new Proxy(
    {},
    {
      get() {
        throw new Error("trap");
      },
      has() {
        throw new Error("trap");
      },
      getPrototypeOf() {
        throw new Error("trap");
      },
    },
  );
  const errorWithMessage = (message: unknown) => Object.assign(new Error("x"), { message });

  it.each([
    ["an Error", () => new Error("boom"), "boom"],
    ["an Error without a message", () => new TypeError(""), "TypeError without a message"],
    ["an Error whose message is a number", () => errorWithMessage(42), "42"],
    ["an Error whose message is an object", () => errorWithMessage({ code: 7 }), '{"code":7}'],
    ["an object with a message", () => ({ message: "x" }), "x"],
    ["an object without a prototype", () => Object.create(null), "threw {}"],
    ["an object", () => ({ code: "E1" }), 'threw {"code":"E1"}'],
    ["a string", () => "plain", "plain"],
    ["an empty string", () => "", "threw an empty string"],
    ["a number", () => 42, "threw 42"],
    ["undefined", () => undefined, "threw undefined"],
    ["null", () => null, "threw null"],
    ["a symbol", () => Symbol("s"), "threw Symbol(s)"],
    ["a BigInt", () => 10n, "threw 10n"],
    ["a proxy that throws on every look", () => proxyThatThrows, "threw a value that cannot be shown"],
    ["a message with NUL and a lone surrogate", () => new Error("a\0b\uD800"), "a\\0b\uFFFD"],
  ])("fails the row with the most readable message when it rejects with %s", async (_, thrown, message) => {
    const outcomes = await processRecords(records(2), throwing(thrown), options());
    expect(outcomes).toEqual([
      { status: "failed", error: message },
      { status: "failed", error: message },
    ]);
  });

  it("fails the row when the function throws before returning a promise, and goes on", async () => {
    const logic = ((record: Record<string, unknown>) => {
      if (record.id === 1) throw Object.create(null);
      return Promise.resolve({ emailNormalized: "e", segment: "s" });
    }) as RecordFunction;
    expect(await processRecords(records(2), logic, options())).toEqual([
      { status: "failed", error: "threw {}" },
      { status: "completed", result: { emailNormalized: "e", segment: "s" } },
    ]);
  });

  it("takes whatever it returns, with a promise or without, as its result", async () => {
    const returns = [{ emailNormalized: "e", segment: "s" }, undefined, 5];
    const logic = ((record: Record<string, unknown>) =>
      record.id === 1 ? returns[0] : Promise.resolve(returns[(record.id as number) - 1])) as unknown as RecordFunction;
    expect(await processRecords(records(returns.length), logic, options())).toEqual(
      returns.map((result) => ({ status: "completed", result })),
    );
  });

  it("fails a row that could not be read, without running the function", async () => {
    const rows = records(2);
    rows.unreadable.set(0, "column at holds infinity, which a Date cannot hold");
    const ran: unknown[] = [];
    const outcomes = await processRecords(
      rows,
      async (record) => {
        ran.push(record.id);
        return { emailNormalized: "e", segment: "s" };
      },
      options(),
    );
    expect(outcomes[0]).toEqual({ status: "failed", error: "column at holds infinity, which a Date cannot hold" });
    expect(ran).toEqual([2]);
  });
});

describe("a result checked against the job's result columns", () => {
  const encoded = (result: unknown, writes = usersJob.writes) => {
    const elements: ResultElement[] = [];
    return encodeResult(writes, result, elements) ?? elements;
  };

  it("gives the elements of a result that fits, and says why one does not", () => {
    expect(encoded({ emailNormalized: "e", segment: "s", extra: 1 })).toEqual(["e", "s"]);
    expect(encoded(undefined)).toBe("the job returned undefined, not an object with emailNormalized, segment");
    expect(encoded(5)).toBe("the job returned 5, not an object with emailNormalized, segment");
    expect(encoded(["e", "s"])).toBe('the job returned ["e","s"], not an object with emailNormalized, segment');
    expect(encoded({ nope: 1 })).toBe(
      "result emailNormalized (column email_normalized) is missing from the job's result",
    );
    expect(encoded({ emailNormalized: null, segment: "s" })).toBe(
      "result emailNormalized (column email_normalized) is null: declare it column.text().nullable()",
    );
    expect(encoded({ emailNormalized: 7, segment: "s" })).toBe(
      "result emailNormalized (column email_normalized): 7 is not a string",
    );
    const throwing = {
      get emailNormalized() {
        throw new Error("getter");
      },
    };
    expect(encoded(throwing)).toMatch(/^result emailNormalized \(column email_normalized\): cannot be read: /);
  });

  it("ignores whatever a job that declares no result columns returns", () => {
    expect(encoded(5, [])).toEqual([]);
    expect(encoded(undefined, [])).toEqual([]);
  });
});

describe("task list", () => {
  // the build compiles tasks/ to dist/tasks, where graphile-worker loads them
  it("names exactly the task files under tasks/", async () => {
    const files = (await fs.readdir(path.join(ROOT, "tasks"))).filter((file) => file.endsWith(".ts"));
    expect(files.map((file) => file.replace(/\.ts$/, "")).sort()).toEqual(Object.keys(taskList).sort());
  });
});

describe("the injected latency (PROCESS_DELAY_MS, PROCESS_DELAY_SPREAD)", () => {
  const ids = Array.from({ length: 100_000 }, (_, i) => i + 1);
  const exponential = {
    delayMs: 20,
    delaySpread: "exponential" as const,
    failRate: 0.01,
    failFirstAttempts: undefined,
  };

  it("is the same for every record when fixed", () => {
    expect(new Set(ids.map((id) => recordDelayMs(id, { ...exponential, delaySpread: "fixed" })))).toEqual(
      new Set([20]),
    );
  });

  it("spreads as an exponential of the same mean, the same for a row every time, drawn apart from the failures", () => {
    const delays = ids.map((id) => recordDelayMs(id, exponential));
    const mean = delays.reduce((sum, ms) => sum + ms, 0) / delays.length;
    const share = (over: number) => delays.filter((ms) => ms > over).length / delays.length;
    expect(mean).toBeGreaterThan(19.6);
    expect(mean).toBeLessThan(20.4);
    // an exponential's tail: e^-1 of the rows over the mean, e^-4.6 (1%) over 4.6 times it
    expect(share(20)).toBeCloseTo(Math.exp(-1), 2);
    expect(share(92)).toBeCloseTo(0.01, 2);
    expect(ids.slice(0, 100).map((id) => recordDelayMs(id, exponential))).toEqual(delays.slice(0, 100));
    const failing = ids.filter((id) => failsOnAttempt(id, 1, exponential));
    // drawn apart from the failures: the failing rows wait as long as the others on average
    const failingMean = failing.reduce((sum, id) => sum + recordDelayMs(id, exponential), 0) / failing.length;
    expect(failingMean).toBeGreaterThan(17);
    expect(failingMean).toBeLessThan(23);
  });
});
