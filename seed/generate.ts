import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { CommandError, UsageError } from "../src/base/command-error";
import type { FromWorker, ToWorker } from "./generate-worker";
import type { FileSpec, StatusMix } from "./user-rows";

export interface GenerateOptions {
  rows: number;
  outDir: string;
  rowsPerFile: number;
  seed: number;
  statusMix: StatusMix;
  asOf: string;
  threads?: number;
  /** Called with the rows written so far. */
  onProgress?: (rows: number) => void;
}

const FILE_PATTERN = /^users-\d+\.csv$/;

/**
 * A generator thread streams its file in small blocks and keeps nothing: a small heap holds it,
 * and makes V8 collect early instead of growing every thread's heap to its default limits.
 */
const THREAD_HEAP = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 };

function planFiles(options: GenerateOptions): FileSpec[] {
  const count = Math.ceil(options.rows / options.rowsPerFile);
  const width = Math.max(5, String(count).length);
  return Array.from({ length: count }, (_, index) => ({
    index,
    path: path.join(options.outDir, `users-${String(index + 1).padStart(width, "0")}.csv`),
    firstId: index * options.rowsPerFile + 1,
    rows: Math.min(options.rowsPerFile, options.rows - index * options.rowsPerFile),
    seed: options.seed,
    statusMix: options.statusMix,
    asOf: options.asOf,
  }));
}

/**
 * Writes `rows` users as CSV files of `rowsPerFile` rows on every core (one thread per file at
 * a time). The same options give byte-identical files whatever the number of threads. Files of
 * an earlier generation in the directory that this one does not write are removed, so that an
 * import of the directory reads exactly this data set.
 */
export async function generate(options: GenerateOptions): Promise<{ files: string[]; bytes: number }> {
  const specs = planFiles(options);
  await fs.mkdir(options.outDir, { recursive: true }).catch((error: Error) => {
    throw new UsageError(`cannot create the output directory ${options.outDir}: ${error.message}`);
  });
  const wanted = new Set(specs.map((spec) => path.basename(spec.path)));
  for (const name of await fs.readdir(options.outDir)) {
    if ((FILE_PATTERN.test(name) && !wanted.has(name)) || name.endsWith(".csv.partial")) {
      await fs.rm(path.join(options.outDir, name));
    }
  }

  const threads = Math.max(1, Math.min(options.threads ?? os.availableParallelism(), specs.length));
  const queue = [...specs];
  let rowsDone = 0;
  let bytes = 0;

  const runThread = () =>
    new Promise<void>((resolve, reject) => {
      const worker = new Worker(path.join(__dirname, "generate-worker.js"), { resourceLimits: THREAD_HEAP });
      const sendNext = () => {
        const file = queue.shift();
        worker.postMessage((file ? { file } : { stop: true }) satisfies ToWorker);
      };
      worker.on("message", (message: FromWorker) => {
        if (message.kind === "progress") {
          rowsDone += message.rows;
          options.onProgress?.(rowsDone);
        } else if (message.kind === "done") {
          bytes += message.bytes;
          sendNext();
        } else {
          reject(new CommandError(`generating files failed: ${message.message}`));
          void worker.terminate();
        }
      });
      worker.on("error", reject);
      worker.on("exit", () => resolve());
      sendNext();
    });

  await Promise.all(Array.from({ length: threads }, runThread));
  return { files: specs.map((spec) => spec.path), bytes };
}
