import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { lastJsonLine, ROOT, run } from "../support/processes";

/**
 * `npm start` from a checkout that other users cannot enter, as `mktemp -d` or `/root` gives a
 * root user: the embedded PostgreSQL, which as root runs as the postgres user, must still start.
 */
describe("a checkout in a directory only its owner may enter", () => {
  let parent: string;
  let checkout: string;
  beforeAll(async () => {
    // what the start path needs of a checkout, hard-linked (same file system), under a mode-700 directory
    parent = await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-checkout-"));
    checkout = path.join(parent, "p");
    await fs.mkdir(checkout);
    const parts = ["package.json", "sql", "dist", "node_modules"].map((part) => path.join(ROOT, part));
    await promisify(execFile)("cp", ["-al", ...parts, checkout]);
  });
  afterAll(() => fs.rm(parent, { recursive: true, force: true }));

  it("runs the main job with its embedded PostgreSQL", async () => {
    expect((await fs.stat(parent)).mode & 0o777).toBe(0o700);
    const main = path.join(checkout, "dist/app/main.js");
    const result = await run(process.execPath, [main, "--rows", "2000"], {}, checkout);
    expect(result.stderr).not.toContain("EACCES");
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ status: "completed", total: 2000, completed: 2000 });
  });
});
