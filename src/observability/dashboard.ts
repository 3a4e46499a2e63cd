import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpEndpoint } from "./httpServer.js";
import type { Logger } from "./logger.js";

export interface DashboardOptions {
  /** The folder holding index.html and friends; found next to the package when not given. */
  webDir?: string;
  logger?: Logger;
}

/** Route → file in web/, and how it is served. */
const PAGES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console": { file: "console.html", type: "text/html; charset=utf-8" },
  "/playground": { file: "playground.html", type: "text/html; charset=utf-8" },
  "/assets/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/assets/api.js": { file: "api.js", type: "text/javascript; charset=utf-8" },
  "/assets/dom.js": { file: "dom.js", type: "text/javascript; charset=utf-8" },
  "/assets/dashboard.js": { file: "dashboard.js", type: "text/javascript; charset=utf-8" },
  "/assets/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/assets/playground.js": { file: "playground.js", type: "text/javascript; charset=utf-8" },
};

/**
 * The dashboard (`/`), the conversations console (`/console`) and the playground (`/playground`):
 * static pages from `web/` that read `/api/status` and `/api/projects`. The playground talks MQTT
 * over WebSocket through the client library, served as browser modules:
 * `/assets/llmqtt/client/*.js` (the compiled src/client/, which imports nothing but `mqtt`) and
 * `/assets/mqtt.esm.js` (MQTT.js's browser build; pages map `mqtt` to it with an import map).
 * Pages are read once, here; modules on their first request.
 */
export function registerDashboard(http: HttpEndpoint, options: DashboardOptions = {}): void {
  const webDir = options.webDir ?? findWebDir();
  if (!webDir) {
    options.logger?.warn("dashboard files (web/) not found: the dashboard and playground are off");
    return;
  }
  for (const [path, { file, type }] of Object.entries(PAGES)) {
    const body = readFileSync(join(webDir, file));
    http.route(path, (_req, res) => serve(res, type, body, "no-cache"));
  }
  for (const [path, file] of browserModules()) {
    let body: Buffer | undefined;
    http.route(path, (_req, res) => serve(res, JAVASCRIPT, (body ??= readFileSync(file)), "no-cache"));
  }
}

const JAVASCRIPT = "text/javascript; charset=utf-8";

/** Route → file of the client library's browser modules and of MQTT.js's ESM browser build. */
export function browserModules(): Map<string, string> {
  const modules = new Map<string, string>();
  const clientDir = fileURLToPath(new URL("../client/", import.meta.url));
  for (const file of readdirSync(clientDir)) {
    if (file.endsWith(".js")) modules.set(`/assets/llmqtt/client/${file}`, join(clientDir, file));
  }
  const mqttDir = dirname(createRequire(import.meta.url).resolve("mqtt/package.json"));
  modules.set("/assets/mqtt.esm.js", join(mqttDir, "dist", "mqtt.esm.js"));
  return modules;
}

/**
 * `web/` at the package root: two levels up from `dist/observability/`, three from the tests'
 * `build/src/observability/`.
 */
export function findWebDir(): string | undefined {
  for (const up of ["../../web/", "../../../web/"]) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  return undefined;
}

function serve(res: ServerResponse, type: string, body: Buffer, cache: string): void {
  res
    .writeHead(200, {
      "content-type": type,
      "content-length": body.length,
      "cache-control": cache,
      "x-content-type-options": "nosniff",
    })
    .end(body);
}
