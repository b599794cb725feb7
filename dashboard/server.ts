import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../src/base/logger";
import { ConfigError } from "../src/config/config";
import type { WithClient } from "../src/db/pool";
import type { ErrorAccess } from "./access";
import { assetRoutes, loadAssets } from "./assets";
import { type Controls, controlRoutes, type ReadOnly } from "./control-api";
import { metricsRoutes } from "./metrics";
import { RUN_PAGE, RUNS_PAGE } from "./pages";
import { readRoutes } from "./read-api";
import { findRoute, json, type Reply, type Route } from "./routes";

/**
 * The dashboard's HTTP server: two pages, their scripts, the JSON they poll and, where it was
 * given controls, pause, resume and cancel behind a token. Composed by app/dashboard.ts.
 */

export interface DashboardOptions {
  db: WithClient;
  logger: Logger;
  /** Pause, resume and cancel; or why the dashboard only reads, which its control endpoints' 404 says. */
  controls: Controls | ReadOnly;
  /** Who may read row errors. */
  errors: ErrorAccess;
}

/** Scripts, styles, data and frames from this origin only; no inline script or style at all. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

const html = (body: string): Reply => ({ status: 200, contentType: "text/html; charset=utf-8", body });

function pageRoutes(): Route[] {
  return [
    { method: "GET", path: /^\/$/, answer: () => html(RUNS_PAGE) },
    { method: "GET", path: /^\/runs\/\d{1,9}$/, answer: () => html(RUN_PAGE) },
    { method: "GET", path: /^\/favicon\.ico$/, answer: () => ({ status: 204, contentType: "image/x-icon", body: "" }) },
  ];
}

function send(request: http.IncomingMessage, response: http.ServerResponse, reply: Reply): void {
  response.writeHead(reply.status, {
    ...SECURITY_HEADERS,
    "content-type": reply.contentType,
    "cache-control": reply.cacheable ? "public, max-age=300" : "no-store",
  });
  response.end(request.method === "HEAD" ? undefined : reply.body);
}

export function createDashboardServer(options: DashboardOptions): http.Server {
  const { db, logger, controls, errors } = options;
  const routes = [
    ...pageRoutes(),
    ...assetRoutes(loadAssets()),
    ...readRoutes(db, "token" in controls, errors),
    ...metricsRoutes(db),
    ...controlRoutes(controls, logger),
  ];
  return http.createServer(async (request, response) => {
    // the path as sent, query aside: the routes match it whole (new URL would throw on some)
    const pathname = (request.url ?? "/").split("?")[0] as string;
    const found = findRoute(routes, request.method ?? "GET", pathname);
    if ("status" in found) return send(request, response, found);
    try {
      send(request, response, await found.route.answer(found.params, request));
    } catch (error) {
      logger.error({ err: error, path: pathname }, "dashboard request failed");
      send(request, response, json(500, { error: "the request failed; the dashboard's log says why" }));
    }
  });
}

/**
 * Serves the dashboard on `host` and `port` (0: any free one) and says on which; an address that
 * cannot be served is a configuration error. Closing the server ends its connections too.
 */
export async function serveDashboard(
  options: DashboardOptions,
  { host, port }: { host: string; port: number },
): Promise<{ port: number; close(): void }> {
  const server = createDashboardServer(options);
  server.listen(port, host);
  try {
    await once(server, "listening");
  } catch (error) {
    throw new ConfigError(`DASHBOARD_PORT ${port} cannot be served on ${host} (${(error as Error).message})`);
  }
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
}
