import type http from "node:http";

/** The dashboard's tiny router: a route is a method, a path pattern and what it answers. */

export interface Reply {
  status: number;
  contentType: string;
  body: string | Buffer;
  /** Whether the browser may keep it (static files) or must ask again (data). */
  cacheable?: boolean;
}

export function json(status: number, body: unknown): Reply {
  return { status, contentType: "application/json; charset=utf-8", body: JSON.stringify(body) };
}

export interface Route {
  method: "GET" | "POST";
  /** Anchored; its groups are handed to `answer`. */
  path: RegExp;
  answer: (params: string[], request: http.IncomingMessage) => Reply | Promise<Reply>;
}

/** The route for a request and its path's groups; a path known under another method only is 405. */
export function findRoute(
  routes: Route[],
  method: string,
  pathname: string,
): { route: Route; params: string[] } | Reply {
  let pathKnown = false;
  for (const route of routes) {
    const match = route.path.exec(pathname);
    if (!match) continue;
    if (route.method === method || (route.method === "GET" && method === "HEAD")) {
      return { route, params: match.slice(1) };
    }
    pathKnown = true;
  }
  return pathKnown ? json(405, { error: `${method} is not allowed here` }) : json(404, { error: "not found" });
}
