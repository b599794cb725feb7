import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

/**
 * A private CA and a server certificate it signs, made with the openssl command, for a database
 * server of this process's own that speaks TLS (src/db/embedded.ts) as a managed one with a
 * private CA does (RDS, Cloud SQL, Azure). Short-lived: they live as long as that server.
 */

const execFileAsync = promisify(execFile);
const DAYS = "7";
/** P-256 keys: made in milliseconds, where RSA's take a busy machine seconds. */
const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args);
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`);
  }
}

/** A self-signed CA certificate, `name` its common name, as `dir`/`name`.crt and .key. */
export async function makeCertificateAuthority(dir: string, name: string): Promise<CertificateFiles> {
  const files = { certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
  await openssl(
    ["req", "-x509", ...KEY, "-keyout", files.keyFile, "-out", files.certFile, "-days", DAYS].concat([
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
    ]),
  );
  return files;
}

/** A server certificate for 127.0.0.1 and localhost signed by `ca`, as `dir`/server.crt and .key. */
export async function makeServerCertificate(dir: string, ca: CertificateFiles): Promise<CertificateFiles> {
  const files = { certFile: path.join(dir, "server.crt"), keyFile: path.join(dir, "server.key") };
  const request = path.join(dir, "server.csr");
  const extensions = path.join(dir, "server.ext");
  await fs.writeFile(extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  await openssl(["req", "-new", ...KEY, "-keyout", files.keyFile, "-out", request, "-subj", "/CN=127.0.0.1"]);
  await openssl(
    ["x509", "-req", "-in", request, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-CAcreateserial"].concat([
      "-out",
      files.certFile,
      "-days",
      DAYS,
      "-extfile",
      extensions,
    ]),
  );
  return files;
}
