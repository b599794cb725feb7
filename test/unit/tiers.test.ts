import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../support/processes";

/**
 * Jest runs only the test files under a tier's folder: one left elsewhere would never run, so
 * each must sit in exactly one tier.
 */

const WHERE =
  "move it to test/unit/ (no PostgreSQL, no build), test/db/ (PostgreSQL, in process) " +
  "or test/system/ (spawned processes from dist/, other programs)";

function testFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : testFiles(relative);
    return entry.name.endsWith(".test.ts") ? [relative] : [];
  });
}

describe("test tiers", () => {
  const { projects } = require(path.join(ROOT, "jest.config.js")) as { projects: { roots: string[] }[] };
  const tierDirs = projects.map(({ roots }) => roots.map((root) => root.replace("<rootDir>/", "")));

  it("finds the tiers' folders and their test files", () => {
    expect(tierDirs.flat()).toEqual(["test/unit", "test/db", "test/system"]);
    expect(testFiles("test")).toContain("test/unit/tiers.test.ts");
  });

  it("puts every test file in exactly one tier", () => {
    const misplaced = testFiles("test").flatMap((file) => {
      const tiers = tierDirs.filter((dirs) => dirs.some((dir) => file.startsWith(`${dir}/`))).length;
      return tiers === 1 ? [] : [`${file} is in ${tiers} tiers: ${WHERE}`];
    });
    expect(misplaced).toEqual([]);
  });
});

describe("the order jest starts the test files in, without timings of its own", () => {
  const LongestFirst = require(path.join(ROOT, "test/support/sequencer.js"));
  const { LONGEST_FIRST } = LongestFirst as { LONGEST_FIRST: string[] };

  it("names only test files that exist", () => {
    expect(LONGEST_FIRST.filter((file) => !fs.existsSync(path.join(ROOT, file)))).toEqual([]);
  });

  it("starts the longest first, in their order, then the rest by size as jest does", () => {
    // no cache: as in a fresh clone
    const context = { config: { rootDir: ROOT, cache: false }, hasteFS: { getSize: (file: string) => file.length } };
    const test = (file: string) => ({ path: path.join(ROOT, file), context });
    const others = ["test/unit/a.test.ts", "test/system/much-longer-name.test.ts"];
    const [longest, next] = LONGEST_FIRST.slice(0, 2) as [string, string];
    const sorted = new LongestFirst({}).sort([...others, next, longest].map(test));
    expect(sorted.map((t: { path: string }) => path.relative(ROOT, t.path))).toEqual([
      longest,
      next,
      "test/system/much-longer-name.test.ts",
      "test/unit/a.test.ts",
    ]);
  });
});
