import { createHash, timingSafeEqual } from "node:crypto";
import type http from "node:http";

/**
 * Who may read what. Row errors (a failed record's message) can hold the row's values, so they
 * go only to a request carrying a token the dashboard was given (DASHBOARD_READ_TOKEN, or
 * DASHBOARD_TOKEN, which may do more); a dashboard given neither shows them only where it
 * listens on loopback, whose readers are on the machine that holds the connection string anyway.
 */

const digest = (text: string) => createHash("sha256").update(text).digest();

/** Compared in constant time: the time a refusal takes tells nothing about the token. */
export function carriesToken(request: http.IncomingMessage, token: string): boolean {
  const [scheme, given] = (request.headers.authorization ?? "").split(" ");
  return scheme === "Bearer" && given !== undefined && timingSafeEqual(digest(given), digest(token));
}

export interface ErrorAccess {
  /** Whether a request may read row errors, or why not. */
  allows(request: http.IncomingMessage): true | { hiddenBecause: string };
  /** Whether a token would unlock them: the page then asks for one. */
  tokenUnlocks: boolean;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

export function errorAccess(tokens: (string | undefined)[], host: string): ErrorAccess {
  const given = tokens.filter((token): token is string => token !== undefined);
  if (given.length > 0) {
    const hiddenBecause = "row errors can hold a row's values: they are shown to the holders of a token";
    return {
      allows: (request) => given.some((token) => carriesToken(request, token)) || { hiddenBecause },
      tokenUnlocks: true,
    };
  }
  if (LOOPBACK.test(host)) return { allows: () => true, tokenUnlocks: false };
  const hiddenBecause = `row errors can hold a row's values: a dashboard listening on ${host} shows them only with DASHBOARD_READ_TOKEN`;
  return { allows: () => ({ hiddenBecause }), tokenUnlocks: false };
}
