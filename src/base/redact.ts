/** Removes passwords from connection strings (URL and keyword forms) inside any text. */
export function redactSecrets(text: string): string {
  return text
    .replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, "$1***@")
    .replace(/(password\s*=\s*)('[^']*'|\S+)/gi, "$1***");
}

/** A connection string's target without credentials, for log lines: host:port/database. */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || "localhost"}:${parsed.port || "5432"}${parsed.pathname}`;
  } catch {
    return "(unparseable connection string)";
  }
}
