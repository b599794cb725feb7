import pg from "pg";
import type { Logger } from "../src/base/logger";
import { redactSecrets } from "../src/base/redact";
import { withTlsSettings } from "../src/db/tls";

export type Reading = { value: number } | { error: string };

/**
 * KEDA's postgresql scaler: the trigger's query on a connection of its own, read as one number.
 * No row, NULL or a value that is not a number is an error, as it is for KEDA.
 */
export class TriggerQuery {
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly query: string,
    timeoutMs: number,
    logger: Logger,
  ) {
    this.pool = new pg.Pool({
      // KEDA reads only the URL, as libpq does: not the pods' PGSSLMODE or PGSSLROOTCERT
      connectionString: withTlsSettings(url, {}),
      max: 1,
      application_name: "local-keda",
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
    });
    // a connection lost between polls is replaced at the next one, which reports the failure
    this.pool.on("error", (error) => logger.debug({ err: error }, "trigger connection lost"));
  }

  async read(): Promise<Reading> {
    try {
      const { rows } = await this.pool.query({ text: this.query, rowMode: "array" });
      const value = rows[0]?.[0];
      const number = value === null || value === undefined ? Number.NaN : Number(value);
      if (!Number.isFinite(number)) return { error: `the query returned ${rows.length === 0 ? "no row" : value}` };
      return { value: number };
    } catch (error) {
      return { error: redactSecrets((error as Error).message) };
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
