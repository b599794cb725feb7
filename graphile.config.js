// The configuration `npx graphile-worker` finds by itself (graphile.config.* in the working
// directory): .graphile-worker.config.ts as compiled by `npm run build` (`npm ci` runs it).
const fs = require("node:fs");
const path = require("node:path");

const compiled = path.join(__dirname, "dist", ".graphile-worker.config.js");
if (!fs.existsSync(compiled)) {
  process.stderr.write("error: the worker is not built (no dist/.graphile-worker.config.js): run npm run build\n");
  process.exit(1);
}
module.exports = require(compiled);
