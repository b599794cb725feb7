import fs from "node:fs";
import path from "node:path";
import type { Reply, Route } from "./routes";
import { DASHBOARD_CSS } from "./styles";

/**
 * The files the pages load, all from this server (the CSP allows no other origin): each page's
 * script, bundled from ./browser by esbuild in `npm run build` (package.json) into one classic
 * script, and uPlot from node_modules. Only these names are served.
 */

const PAGE_SCRIPTS = ["runs-page.js", "run-page.js"];
const UPLOT_FILES = ["uPlot.iife.min.js", "uPlot.min.css"];

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

function asset(file: string, body: string | Buffer): [string, Reply] {
  const contentType = CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream";
  return [file, { status: 200, contentType, body, cacheable: true }];
}

function read(file: string): Buffer {
  if (!fs.existsSync(file)) throw new Error(`the dashboard's ${file} is missing: run npm run build`);
  return fs.readFileSync(file);
}

/** Reads every asset once, at start: a build that lacks one fails then, not on a page load. */
export function loadAssets(): Map<string, Reply> {
  const scriptsDir = path.join(__dirname, "scripts");
  const uplotDir = path.dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
  return new Map([
    asset("dashboard.css", DASHBOARD_CSS),
    ...PAGE_SCRIPTS.map((file) => asset(file, read(path.join(scriptsDir, file)))),
    ...UPLOT_FILES.map((file) => asset(file, read(path.join(uplotDir, file)))),
  ]);
}

export function assetRoutes(assets: Map<string, Reply>): Route[] {
  return [
    {
      method: "GET",
      path: /^\/assets\/([\w.-]+)$/,
      answer: ([file]) => assets.get(file ?? "") ?? { status: 404, contentType: "text/plain", body: "not found\n" },
    },
  ];
}
