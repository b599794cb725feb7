import { createSchemaTemplate } from "./database";
import { startTestServer, type TestServer } from "./server";

declare global {
  var testServer: TestServer | undefined;
  var schemaTemplate: string | undefined;
}

export default async function globalSetup(): Promise<void> {
  const server = await startTestServer();
  globalThis.testServer = server;
  // jest's workers inherit the environment of this process
  process.env.TEST_ADMIN_DATABASE_URL = server.adminUrl;
  globalThis.schemaTemplate = await createSchemaTemplate();
  process.env.TEST_SCHEMA_TEMPLATE = globalThis.schemaTemplate;
  // the workers of the tests run at full speed, as on a database nobody else uses: no pause after
  // each slice (the default gives the database idle time beside an application); the tests of
  // the pause set their own
  process.env.SLICE_PAUSE_RATIO ??= "0";
  process.stderr.write(`\ntests use PostgreSQL from ${server.kind}\n`);
}
