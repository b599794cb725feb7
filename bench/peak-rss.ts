import fs from "node:fs";

/**
 * Preloaded into a process (node --require dist/bench/peak-rss.js ...) to write its peak resident
 * set size, in kilobytes, to the file PEAK_RSS_FILE names when it exits.
 */
const file = process.env.PEAK_RSS_FILE;
if (file) process.on("exit", () => fs.writeFileSync(file, String(process.resourceUsage().maxRSS)));
