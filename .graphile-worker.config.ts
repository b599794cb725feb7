import { getConfig, requireDatabaseUrl } from "./src/config";
import { getLogger } from "./src/context";
import { workerPreset } from "./src/worker/preset";

// The worker's configuration, read from the environment (see src/config.ts). Run the worker
// after `npm run build` with: npx graphile-worker -C dist/.graphile-worker.config.js
const config = getConfig();

export default workerPreset(config, getLogger(), requireDatabaseUrl(config));
