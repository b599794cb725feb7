import path from "node:path";
import { freePort } from "../../src/base/free-port";
import { ROOT, type Running, start, untilAnswering } from "./processes";

/** The dashboard as `npm run dashboard` starts it, in a process of its own. */
export const DASHBOARD_CLI = path.join(ROOT, "dist/app/dashboard.js");

export interface Dashboard {
  url: string;
  process: Running;
  stop(): Promise<void>;
}

/** Starts the dashboard on a free port and waits until it answers. */
export async function startDashboard(env: Record<string, string | undefined>): Promise<Dashboard> {
  const port = await freePort();
  const running = start(process.execPath, [DASHBOARD_CLI], { DASHBOARD_PORT: String(port), ...env });
  const url = `http://127.0.0.1:${port}`;
  const stop = await untilAnswering(running, "the dashboard", () =>
    fetch(`${url}/api/dashboard`).then(
      (response) => response.ok,
      () => false,
    ),
  );
  return { url, process: running, stop };
}
