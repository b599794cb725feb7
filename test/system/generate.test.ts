import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CSV_HEADER } from "../../seed/user-rows";
import { seed } from "../support/processes";

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), "generate-"));
}

async function readAll(dir: string): Promise<Map<string, string>> {
  const names = (await fs.readdir(dir)).sort();
  return new Map(
    await Promise.all(names.map(async (name) => [name, await fs.readFile(path.join(dir, name), "utf8")] as const)),
  );
}

function dataLines(files: Map<string, string>): string[][] {
  return [...files.values()].flatMap((text) =>
    text
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => line.split(",")),
  );
}

describe("seed generate", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true }))));

  async function generate(args: string[]): Promise<Map<string, string>> {
    const dir = await tempDir();
    dirs.push(dir);
    const result = await seed(["generate", "--out", dir, ...args], {});
    expect(result).toMatchObject({ code: 0 });
    return readAll(dir);
  }

  it("writes byte-identical files for the same seed, whatever the number of threads", async () => {
    const oneThread = await generate(["--rows", "2500", "--rows-per-file", "1000", "--seed", "7", "--threads", "1"]);
    const threeThreads = await generate(["--rows", "2500", "--rows-per-file", "1000", "--seed", "7", "--threads", "3"]);
    expect([...oneThread.keys()]).toEqual(["users-00001.csv", "users-00002.csv", "users-00003.csv"]);
    expect(threeThreads).toEqual(oneThread);
    const otherSeed = await generate(["--rows", "2500", "--rows-per-file", "1000", "--seed", "8"]);
    expect(otherSeed.get("users-00001.csv")).not.toEqual(oneThread.get("users-00001.csv"));
  });

  it("keeps the original's columns and value ranges, with unique emails and every row pending", async () => {
    const files = await generate(["--rows", "3000", "--rows-per-file", "1200", "--as-of", "2026-01-01"]);
    for (const text of files.values()) expect(text.startsWith(CSV_HEADER)).toBe(true);
    const rows = dataLines(files);
    expect(rows).toHaveLength(3000);
    expect(rows.map((r) => Number(r[0]))).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(new Set(rows.map((r) => r[2])).size).toBe(3000);
    const from = Date.parse("2025-01-01T00:00:00Z");
    const to = Date.parse("2026-01-01T00:00:00Z");
    for (const [, name, email, age, salary, createdAt, status, batchId] of rows) {
      expect(name?.length).toBeGreaterThan(2);
      expect(email).toMatch(/^[a-z0-9]+\.[a-z0-9]+\.\d+@[a-z.]+\.(com|net|org)$/);
      expect(Number(age)).toBeGreaterThanOrEqual(18);
      expect(Number(age)).toBeLessThanOrEqual(80);
      expect(Number(salary)).toBeGreaterThanOrEqual(30_000);
      expect(Number(salary)).toBeLessThanOrEqual(150_000);
      const created = Date.parse(`${createdAt?.replace(" ", "T")}Z`);
      expect(created).toBeGreaterThanOrEqual(from);
      expect(created).toBeLessThanOrEqual(to);
      expect(status).toBe("pending");
      expect(batchId).toBe("");
    }
  });

  it("reproduces the original's uniform status mix on request", async () => {
    const rows = dataLines(await generate(["--rows", "4000", "--status-mix", "original"]));
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row[6] as string, (counts.get(row[6] as string) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(["cancelled", "completed", "failed", "pending"]);
    for (const count of counts.values()) expect(count).toBeGreaterThan(800);
    for (const row of rows) expect(Number(row[7])).toBeGreaterThanOrEqual(1);
  });

  it("removes the files of an earlier, larger generation from the directory", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    await seed(["generate", "--out", dir, "--rows", "3000", "--rows-per-file", "1000"], {});
    const result = await seed(["generate", "--out", dir, "--rows", "1500", "--rows-per-file", "1000"], {});
    expect(result.code).toBe(0);
    expect(await fs.readdir(dir)).toEqual(["users-00001.csv", "users-00002.csv"]);
  });

  it.each([
    [["--rows", "0"], "--rows must be a whole number of at least 1"],
    [["--rows", "ten"], "--rows must be a whole number of at least 1"],
    [["--status-mix", "random"], "Invalid values"],
    [["--as-of", "yesterday-ish"], "--as-of must be a date"],
  ])("refuses %j with status 2", async (args, message) => {
    const dir = await tempDir();
    dirs.push(dir);
    const result = await seed(["generate", "--out", dir, ...args], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});
