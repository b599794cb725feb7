import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../../src/base/free-port";
import { type Running, start, untilAnswering } from "./processes";

/** Where Debian's pgbouncer package puts the program (CI installs it: .ci/run). */
const PGBOUNCER = "/usr/sbin/pgbouncer";

export type PoolMode = "session" | "transaction";

export interface PgBouncer {
  /** `database`'s connection string through the pooler. */
  url: string;
  process: Running;
  stop(): Promise<void>;
}

/** PgBouncer refuses to run as root: as root, it is told to switch to an unprivileged user. */
function unprivilegedUser(): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const users = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":")[0]);
  return users.includes("postgres") ? "postgres" : "nobody";
}

/**
 * A real PgBouncer in `mode` on a free port, in front of the database `databaseUrl` names, with
 * trust authentication towards its clients (the password, if any, is the pooler's towards the
 * server). Fails, saying how to install it, where it is not installed.
 */
export async function startPgBouncer(databaseUrl: string, mode: PoolMode): Promise<PgBouncer> {
  if (!fs.existsSync(PGBOUNCER)) {
    throw new Error(
      `${PGBOUNCER} not found: install PgBouncer with \`apt-get install -y pgbouncer\` (as .ci/run does)`,
    );
  }
  const target = new URL(databaseUrl);
  const user = decodeURIComponent(target.username) || "postgres";
  const password = decodeURIComponent(target.password);
  const database = target.pathname.slice(1);
  const port = await freePort();
  // read before PgBouncer drops root, so a private directory will do
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgbouncer-"));
  const quoted = (text: string) => `"${text.replace(/"/g, '""')}"`;
  fs.writeFileSync(path.join(dir, "users.txt"), `${quoted(user)} ${quoted(password)}\n`);
  fs.writeFileSync(
    path.join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `${database} = host=${target.hostname} port=${target.port || "5432"} dbname=${database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${path.join(dir, "users.txt")}`,
      `pool_mode = ${mode}`,
      "max_client_conn = 200",
      // a worker process, a seed command, status and the dashboard at the same time
      "default_pool_size = 30",
      "",
    ].join("\n"),
  );
  const runAs = unprivilegedUser();
  const running = start(PGBOUNCER, [...(runAs ? ["-u", runAs] : []), path.join(dir, "pgbouncer.ini")], {});
  const credentials = `${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ""}`;
  const url = `postgres://${credentials}@127.0.0.1:${port}/${database}`;
  const stopPgBouncer = await untilAnswering(running, "PgBouncer", async () => {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query("SELECT 1");
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return {
    url,
    process: running,
    async stop() {
      await stopPgBouncer();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
