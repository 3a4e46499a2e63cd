import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isLoopbackHost } from "../config/schema.js";

export interface HttpAccessSettings {
  /** The address listened on. */
  host: string;
  /** The bearer token; none leaves everything open (the settings allow that on loopback only). */
  token?: string;
  /** Also require the token on the probes and metrics. */
  protectMetrics: boolean;
}

/** Open without a token unless protectMetrics: orchestrators and Prometheus probe these. */
const PROBE_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * Who may use which HTTP path. With a token, `/api/*` (conversations, prompts, status) needs
 * `Authorization: Bearer <token>`; the pages and their scripts stay open, as they hold no data and
 * ask for the token themselves. Tokens are compared as SHA-256 digests with timingSafeEqual: equal
 * lengths whatever was sent, and no early exit that would tell how much of a guess was right.
 *
 * Without a token on a loopback address, `/api/*` still answers only requests naming this machine
 * in their Host header: a web page the operator visits could otherwise point its own host name at
 * 127.0.0.1 (DNS rebinding) and read the conversations with the operator's browser.
 */
export class HttpAccess {
  private readonly digest?: Buffer;
  private readonly loopbackOnly: boolean;

  constructor(private readonly settings: HttpAccessSettings) {
    this.digest = settings.token === undefined ? undefined : sha256(settings.token);
    this.loopbackOnly = !this.digest && isLoopbackHost(settings.host);
  }

  /** Why the request may not go on to `path` (401: no valid token, 403: a foreign Host), or undefined. */
  refusal(req: IncomingMessage, path: string): 401 | 403 | undefined {
    if (this.loopbackOnly && isApi(path) && !isLoopbackHost(hostName(req.headers.host))) return 403;
    return this.allows(req, path) ? undefined : 401;
  }

  /** Whether `path` needs the token at all. */
  protects(path: string): boolean {
    if (!this.digest) return false;
    if (isApi(path)) return true;
    return this.settings.protectMetrics && PROBE_PATHS.has(path);
  }

  /** Whether the request may go on to `path`. */
  allows(req: IncomingMessage, path: string): boolean {
    if (!this.digest || !this.protects(path)) return true;
    const presented = bearerToken(req.headers.authorization);
    return presented !== undefined && timingSafeEqual(sha256(presented), this.digest);
  }
}

function isApi(path: string): boolean {
  return path === "/api" || path.startsWith("/api/");
}

/** The name in a Host header, without the port: `[::1]:8090` → `[::1]`, `localhost:8090` → `localhost`. */
function hostName(header: string | undefined): string {
  return (header ?? "").replace(/:\d*$/, "");
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  return match?.[1];
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
