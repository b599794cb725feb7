import { getConfig, requireDatabaseUrl } from "./src/config";
import { getLogger } from "./src/context";
import { assertWorkerCanStart } from "./src/worker/preflight";
import { workerPreset } from "./src/worker/preset";

// The worker's configuration, read from the environment (see src/config.ts). `npx graphile-worker`
// finds it, compiled by `npm run build`, through graphile.config.js in the project root.
const config = getConfig();
const connectionString = requireDatabaseUrl(config);

// A promise, which graphile-worker's CLI awaits when it loads its configuration: the database is
// checked before the CLI opens its pool, and a failed check ends the process with one line.
export default assertWorkerCanStart(connectionString).then(() => workerPreset(config, getLogger(), connectionString));
