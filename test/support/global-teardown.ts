import { dropSchemaTemplate } from "./database";

export default async function globalTeardown(): Promise<void> {
  if (globalThis.schemaTemplate) await dropSchemaTemplate(globalThis.schemaTemplate);
  await globalThis.testServer?.stop();
}
