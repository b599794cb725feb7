import { once } from "node:events";
import fs from "node:fs";
import { parentPort } from "node:worker_threads";
import { type FileSpec, userCsvBlocks } from "./user-rows";

/**
 * A generator thread: writes the files it is sent, one at a time, streaming (memory does not
 * grow with the file), into a temporary name renamed when complete.
 */

export type ToWorker = { file: FileSpec } | { stop: true };
export type FromWorker =
  | { kind: "progress"; rows: number }
  | { kind: "done"; index: number; bytes: number }
  | { kind: "error"; message: string };

const PROGRESS_EVERY_ROWS = 20_000;

async function writeFile(spec: FileSpec): Promise<number> {
  const partial = `${spec.path}.partial`;
  const out = fs.createWriteStream(partial, { highWaterMark: 1 << 20 });
  let bytes = 0;
  let rowsSinceReport = 0;
  for (const [block, rows] of userCsvBlocks(spec)) {
    bytes += Buffer.byteLength(block);
    if (!out.write(block)) await once(out, "drain");
    rowsSinceReport += rows;
    if (rowsSinceReport >= PROGRESS_EVERY_ROWS) {
      parentPort?.postMessage({ kind: "progress", rows: rowsSinceReport } satisfies FromWorker);
      rowsSinceReport = 0;
    }
  }
  parentPort?.postMessage({ kind: "progress", rows: rowsSinceReport } satisfies FromWorker);
  out.end();
  await once(out, "finish");
  await fs.promises.rename(partial, spec.path);
  return bytes;
}

parentPort?.on("message", (message: ToWorker) => {
  if ("stop" in message) {
    parentPort?.close();
    return;
  }
  writeFile(message.file).then(
    (bytes) => parentPort?.postMessage({ kind: "done", index: message.file.index, bytes } satisfies FromWorker),
    (error: Error) => parentPort?.postMessage({ kind: "error", message: error.message } satisfies FromWorker),
  );
});
