import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../support/processes";

/**
 * The layers import downward only: src/ is the core, and knows nothing of the workflow, its tasks,
 * the seed tool, the dashboard, the local autoscaler, the commands or the entries that compose them all; the run
 * model at its bottom imports nothing. Job files reach the core through its one entry, `#pg-batch`,
 * so that its modules can move.
 */

const UPPER_LAYERS = ["app", "autoscaler", "cli", "dashboard", "seed", "tasks", "workflows"];

/**
 * The core's folders from the bottom up: each imports only from its own and those below it. base:
 * what every layer uses (exit statuses, the command error, the logger); db: connections, the schema
 * and its checks; jobs: the job API and a job's SQL; runs: runs, chunks and their history; terminal:
 * output for people; processing: a job's function over records; health: the throttle; chunks: a
 * chunk worked through; config: the environment, and the process's logger and jobs; worker:
 * graphile-worker's side; status: where runs are, read back.
 */
const CORE_ORDER = [
  "base",
  "db",
  "jobs",
  "runs",
  "terminal",
  "processing",
  "health",
  "chunks",
  "config",
  "worker",
  "status",
];
/** The job API's entry (src/index.ts), the one file at src/'s root. */
const ENTRY = "src/index.ts";
const MODEL = "src/runs/model.ts";

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(relative);
    return entry.name.endsWith(".ts") ? [relative] : [];
  });
}

/** What a file imports: static imports, re-exports, dynamic imports and requires. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), "utf8");
  const specifiers = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']([^"']+)["']/g;
  return [...text.matchAll(specifiers)].map((match) => match[1] as string);
}

/** The top-level directory a relative import lands in; undefined for a package. */
function layerOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(file), specifier));
  return target.split(path.sep)[0];
}

describe("layers", () => {
  const files = sourceFiles("src");

  it("finds the source files and their imports", () => {
    expect(files).toContain(MODEL);
    expect(importsOf("src/runs/runs.ts")).toContain("./model");
  });

  it("no module under src/ imports from the layers above it", () => {
    const upward = files.flatMap((file) =>
      importsOf(file)
        .filter((specifier) => UPPER_LAYERS.includes(layerOf(file, specifier) ?? ""))
        .map((specifier) => `${file} imports ${specifier}`),
    );
    expect(upward).toEqual([]);
  });

  it("every file of src/ is in a folder of the order, but its entry", () => {
    const loose = files.filter((file) => file !== ENTRY && !CORE_ORDER.includes(file.split(path.sep)[1] ?? ""));
    expect(loose).toEqual([]);
  });

  it("a folder of src/ imports only from itself and the folders below it", () => {
    const upward = files
      .filter((file) => file !== ENTRY)
      .flatMap((file) => {
        const level = CORE_ORDER.indexOf(file.split(path.sep)[1] ?? "");
        return importsOf(file)
          .filter((specifier) => layerOf(file, specifier) === "src")
          .filter((specifier) => {
            const target = path.relative(path.join(ROOT, "src"), path.resolve(ROOT, path.dirname(file), specifier));
            return CORE_ORDER.indexOf(target.split(path.sep)[0] ?? "") > level;
          })
          .map((specifier) => `${file} imports ${specifier}`);
      });
    expect(upward).toEqual([]);
  });

  it("the run model imports nothing", () => {
    expect(importsOf(MODEL)).toEqual([]);
  });

  it("finds no directory from its own files' places but the project's root, so that they can move", () => {
    const placed = files.filter((file) =>
      /\b__(dirname|filename)\b/.test(fs.readFileSync(path.join(ROOT, file), "utf8")),
    );
    expect(placed).toEqual(["src/base/paths.ts"]);
  });

  it("ends no process: the entry points above decide how one ends", () => {
    const exiting = files.filter((file) =>
      /process\.exit(\s*\(|Code\b)/.test(fs.readFileSync(path.join(ROOT, file), "utf8")),
    );
    expect(exiting).toEqual([]);
  });

  it("job files import the core only as #pg-batch", () => {
    const jobFiles = sourceFiles("jobs");
    expect(jobFiles).toContain("jobs/users.ts");
    const inward = jobFiles.flatMap((file) =>
      importsOf(file)
        // packages and jobs/ itself are fine; any other path into the project is not
        .filter((specifier) => specifier.startsWith("#") || (layerOf(file, specifier) ?? "jobs") !== "jobs")
        .filter((specifier) => specifier !== "#pg-batch")
        .map((specifier) => `${file} imports ${specifier}`),
    );
    expect(inward).toEqual([]);
    expect(importsOf("jobs/users.ts")).toEqual(["#pg-batch"]);
  });
});
