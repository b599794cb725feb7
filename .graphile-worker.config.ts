import path from "node:path";
import { exitOnError } from "./cli/run-command";
import { getConfig, sessionDatabaseUrl } from "./src/config/config";
import { getCatalog, getLogger } from "./src/config/context";
import { checkDatabase } from "./src/db/preflight";
import { assertJobsFitDatabase } from "./src/jobs/catalog-check";
import { workerPreset } from "./src/worker/preset";
import { workerRecovery } from "./workflows/recovery";

// The worker's configuration, read from the environment (see src/config/config.ts). `npx graphile-worker`
// finds it, compiled by `npm run build`, through graphile.config.js in the project root.
async function configure(): Promise<GraphileConfig.Preset> {
  const config = getConfig();
  // LISTEN/NOTIFY, prepared statements and the liveness's advisory lock need a session: past a
  // transaction pooler, the worker connects directly
  const connectionString = sessionDatabaseUrl(config, "the worker");
  const logger = getLogger();
  const recover = workerRecovery({ deadAfterMs: config.workerDeadAfterMs, actor: config.podName, logger });
  // the schema, and every job of jobs/ against its table
  await checkDatabase(connectionString, "schema", (client, setup) =>
    assertJobsFitDatabase(client, getCatalog().jobs, setup),
  );
  return workerPreset(config, logger, connectionString, {
    recovery: recover,
    // a worker that lost its job pool ends for a restart
    exit: (status) => process.exit(status),
    // compiled beside this file: dist/tasks
    taskDirectory: path.join(__dirname, "tasks"),
  });
}

// A promise, which graphile-worker's CLI awaits when it loads its configuration: the database is
// checked and the metrics port bound before the CLI opens its pool, and a failure (a bad
// variable too) ends the process with one line per problem.
export default configure().catch((error: unknown) => exitOnError("graphile-worker", error));
