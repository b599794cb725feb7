import type { SecretKey } from "./manifests";

/**
 * Where the values of Secret keys come from locally: the Secrets of a cluster are not in the
 * manifests (and the local overlay's points at minikube's host), so each key the manifests use
 * is mapped to a connection string here.
 */

/** The Secret the manifests read their connection strings from; DATABASE_URL stands for its keys by default. */
export const DEFAULT_SECRET = "pg-secret";

/** Gives a key's value; throws a MissingSecretError where none is known. */
export type SecretValues = (ref: SecretKey) => string;

export class MissingSecretError extends Error {
  override name = "MissingSecretError";
}

/** A key's value; undefined for an optional key that has none, as Kubernetes leaves its variable unset. */
export function secretValue(secrets: SecretValues, ref: SecretKey): string | undefined {
  try {
    return secrets(ref);
  } catch (error) {
    if (ref.optional && error instanceof MissingSecretError) return undefined;
    throw error;
  }
}

const describe = (ref: SecretKey) => `${ref.name}/${ref.key}`;

/** `name/key=value`, as `--secret` takes it. */
export function parseSecretOption(text: string): [string, string] {
  const match = /^([^/=\s]+)\/([^=\s]+)=(.+)$/.exec(text);
  if (!match) throw new Error(`--secret takes NAME/KEY=VALUE, such as ${DEFAULT_SECRET}/worker-url=postgres://...`);
  return [`${match[1]}/${match[2]}`, match[3] as string];
}

/**
 * In order: the value given for that key (`--secret`), then the one for every key (an embedded
 * database), then DATABASE_URL for the keys of pg-secret.
 */
export function secretValues(options: { given: string[]; everyKey?: string; databaseUrl?: string }): SecretValues {
  const given = new Map(options.given.map(parseSecretOption));
  return (ref) => {
    const value =
      given.get(describe(ref)) ?? options.everyKey ?? (ref.name === DEFAULT_SECRET ? options.databaseUrl : undefined);
    if (value === undefined) {
      throw new MissingSecretError(
        `no value for the Secret key ${describe(ref)}: pass --secret ${describe(ref)}=postgres://...` +
          (ref.name === DEFAULT_SECRET ? ", set DATABASE_URL, or use --embedded" : ""),
      );
    }
    return value;
  };
}
