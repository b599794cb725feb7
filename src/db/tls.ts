/**
 * TLS to the database, as libpq reads it, for every connection the project opens: a connection
 * string's `sslmode` and `sslrootcert`, else PGSSLMODE and PGSSLROOTCERT. KEDA's postgresql
 * scaler (Go) reads a URL that way, so one Secret's URL means the same to the workers and to
 * KEDA: `require` encrypts without checking the certificate (unless a root certificate is given,
 * then as `verify-ca`), `verify-ca` checks it was signed by the root certificate's CA, and
 * `verify-full` checks that and the host name too. node-postgres alone would take `require`
 * as `verify-full` against Node's public CAs (its `uselibpqcompat` turns libpq's meaning on).
 */

/** libpq's modes that node-postgres can follow (`allow` falls back to no TLS, which it cannot). */
export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface TlsEnvironment {
  PGSSLMODE?: string;
  PGSSLROOTCERT?: string;
}

function searchParams(url: string): URLSearchParams {
  try {
    return new URL(url).searchParams;
  } catch {
    return new URLSearchParams();
  }
}

/**
 * The connection string with the TLS settings it connects with written into it: the
 * environment's where the string says nothing, and libpq's meaning of them.
 */
export function withTlsSettings(url: string, env: TlsEnvironment): string {
  const params = searchParams(url);
  const added: [string, string][] = [];
  if (!params.has("sslmode") && env.PGSSLMODE) added.push(["sslmode", env.PGSSLMODE]);
  if (!params.has("sslrootcert") && env.PGSSLROOTCERT) added.push(["sslrootcert", env.PGSSLROOTCERT]);
  const usesTls = params.has("sslmode") || params.has("sslrootcert") || added.length > 0;
  if (usesTls && !params.has("uselibpqcompat")) added.push(["uselibpqcompat", "true"]);
  if (added.length === 0) return url;
  const query = added.map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join("&");
  return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

/** Why a connection string's TLS settings cannot work, before any connection; undefined when they can. */
export function tlsSettingsProblem(url: string, readable: (file: string) => string | undefined): string | undefined {
  const params = searchParams(url);
  const mode = params.get("sslmode");
  if (mode !== null && !(SSL_MODES as readonly string[]).includes(mode)) {
    return `sslmode=${mode} is not one of ${SSL_MODES.join(", ")}`;
  }
  const rootCert = params.get("sslrootcert");
  if (mode === "verify-ca" && rootCert === null) {
    return "sslmode=verify-ca needs sslrootcert (or PGSSLROOTCERT): the CA certificate to check the server's against";
  }
  const unreadable = rootCert === null ? undefined : readable(rootCert);
  return unreadable && `sslrootcert ${rootCert} cannot be read (${unreadable})`;
}

/** Node's codes for a certificate chain it could not trust. */
const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * A TLS failure to connect explained in one line, with the setting to change; undefined for any
 * other error. `url` is the connection string with its TLS settings (withTlsSettings).
 */
export function describeTlsFailure(error: Error, url: string): string | undefined {
  const code = String((error as { code?: unknown }).code ?? "");
  const params = searchParams(url);
  const mode = params.get("sslmode") ?? "unset";
  const rootCert = params.get("sslrootcert");
  if (UNTRUSTED.has(code)) {
    const trusted = rootCert ? `the CA of sslrootcert ${rootCert}` : "a CA Node trusts (no sslrootcert given)";
    return (
      `the server's certificate is not signed by ${trusted} (${error.message}): set sslrootcert in the ` +
      "connection string, or PGSSLROOTCERT, to the CA certificate that signed it"
    );
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return (
      `the server's certificate is not for the host connected to (${error.message}): connect by a name it holds, ` +
      "or set sslmode=verify-ca (the CA is checked, the name is not)"
    );
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return `the server's certificate is not valid now (${error.message}): the database's certificate must be renewed`;
  }
  if (error.message === "The server does not support SSL connections") {
    return `the server does not accept TLS connections, and sslmode=${mode} asks for TLS: turn on ssl on the server, or set sslmode=disable in the connection string (or PGSSLMODE)`;
  }
  if (/no pg_hba\.conf entry .*no encryption/.test(error.message)) {
    return `the server accepts only TLS connections (${error.message}): set sslmode=verify-full and sslrootcert in the connection string (or PGSSLMODE and PGSSLROOTCERT)`;
  }
  return undefined;
}
