import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import readline from "node:readline";
import { ROOT } from "./processes";

/**
 * An embedded PostgreSQL server of one test's own, run in a child process (the package is an
 * ES module, which jest's module loader cannot require), for tests that restart the server.
 */
export interface PrivateServer {
  url: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const SERVER_SCRIPT = `
const readline = require("node:readline");
const { startEmbeddedPostgres } = require(${JSON.stringify(path.join(ROOT, "dist/src/db/embedded.js"))});
const { createLogger } = require(${JSON.stringify(path.join(ROOT, "dist/src/logger.js"))});
startEmbeddedPostgres(createLogger({ level: "warn", pod: "private-server" })).then((db) => {
  console.log(JSON.stringify({ url: db.url }));
  readline.createInterface({ input: process.stdin }).on("line", async (command) => {
    if (command === "restart") { await db.restart(); console.log("restarted"); }
    if (command === "stop") { await db.stop(); process.exit(0); }
  });
});`;

export async function startPrivateServer(): Promise<PrivateServer> {
  const child = spawn(process.execPath, ["-e", SERVER_SCRIPT], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout });
  const next = () => once(lines, "line").then(([line]) => line as string);
  const { url } = JSON.parse(await next()) as { url: string };
  return {
    url,
    async restart() {
      child.stdin.write("restart\n");
      expect(await next()).toBe("restarted");
    },
    async stop() {
      child.stdin.write("stop\n");
      await once(child, "exit");
    },
  };
}
