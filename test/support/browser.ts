import fs from "node:fs";
import puppeteer, { type Browser } from "puppeteer-core";

/**
 * The headless Chromium of the browser tests: CHROMIUM_PATH, else Debian's package (.ci/run
 * installs it where apt-get can). Where there is none, the tests that need it are skipped and
 * say so: `reason` tells why.
 */

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function findChromium(): { path: string } | { reason: string } {
  const asked = process.env.CHROMIUM_PATH;
  if (asked) return fs.existsSync(asked) ? { path: asked } : { reason: `CHROMIUM_PATH ${asked} does not exist` };
  const found = CANDIDATES.find((candidate) => fs.existsSync(candidate));
  return found
    ? { path: found }
    : { reason: `no Chromium at ${CANDIDATES.join(", ")} (apt-get install chromium, or set CHROMIUM_PATH)` };
}

export function launchBrowser(executablePath: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath,
    headless: true,
    // as root (CI, containers) Chromium runs only without its sandbox; /dev/shm may be small
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}
