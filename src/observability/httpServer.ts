import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { HttpAccess } from "./access.js";
import type { Logger } from "./logger.js";

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HttpEndpointOptions {
  host: string;
  port: number;
  logger: Logger;
  readiness: () => Readiness;
  metrics: () => Promise<string>;
  metricsContentType: string;
  /** Which paths need the bearer token; none: all open. */
  access?: HttpAccess;
}

/**
 * `/healthz` (the process answers), `/readyz` (broker connected and a model server healthy),
 * `/metrics` (Prometheus), plus pages registered with `route` (the dashboard) and APIs mounted
 * under a prefix with `mount` (the console's).
 */
export class HttpEndpoint {
  private server?: Server;
  private readonly routes = new Map<string, RouteHandler>();
  private readonly mounts: { prefix: string; handler: RouteHandler }[] = [];
  private readonly log: Logger;

  constructor(private readonly options: HttpEndpointOptions) {
    this.log = options.logger.child({ module: "http" });
    this.route("/healthz", (_req, res) => send(res, 200, "application/json", '{"status":"ok"}'));
    this.route("/readyz", (_req, res) => {
      const readiness = options.readiness();
      send(res, readiness.ready ? 200 : 503, "application/json", JSON.stringify(readiness));
    });
    this.route("/metrics", async (_req, res) => {
      send(res, 200, options.metricsContentType, await options.metrics());
    });
  }

  /** A GET (and HEAD) handler for exactly `path`. */
  route(path: string, handler: RouteHandler): void {
    this.routes.set(path, handler);
  }

  /** A handler for every method on every path under `prefix` that no `route` serves. */
  mount(prefix: string, handler: RouteHandler): void {
    this.mounts.push({ prefix, handler });
  }

  /** Resolves with the base URL once listening. */
  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = this.options.host.includes(":") ? `[${this.options.host}]` : this.options.host;
    const url = `http://${host}:${port}`;
    this.log.info({ url }, "HTTP endpoint listening (/healthz, /readyz, /metrics)");
    return url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const refusal = this.options.access?.refusal(req, path);
    if (refusal === 401) {
      res.setHeader("www-authenticate", 'Bearer realm="llmqtt"');
      return send(res, 401, "application/json", JSON.stringify({ error: UNAUTHORIZED }));
    }
    if (refusal === 403) return send(res, 403, "application/json", JSON.stringify({ error: FOREIGN_HOST }));
    let handler = this.routes.get(path);
    if (handler && req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(res, 405, "text/plain", "method not allowed\n");
    }
    handler ??= this.mounts.find(({ prefix }) => path.startsWith(prefix))?.handler;
    if (!handler) return send(res, 404, "text/plain", "not found\n");
    try {
      await handler(req, res);
    } catch (error) {
      this.log.error({ err: error, path }, "HTTP handler failed");
      if (!res.headersSent) send(res, 500, "text/plain", "internal error\n");
    }
  }
}

const UNAUTHORIZED = "this needs the gateway's access token: send it as Authorization: Bearer <token>";
const FOREIGN_HOST =
  "without an access token (--http-token) the API answers only requests for localhost or a loopback address";

export function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" }).end(body);
}
