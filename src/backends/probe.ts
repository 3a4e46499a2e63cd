import { CallSignal } from "./callSignal.js";
import type { BackendHealth } from "./types.js";

export interface ProbeTarget {
  /** Server root without /v1, e.g. http://127.0.0.1:8080. */
  root: string;
  /** The root as it may be shown to users (no credentials). */
  server: string;
  apiKey?: string;
  fetch: typeof fetch;
  timeoutMs: number;
}

const START_SERVER_HINT = "start llama-server or check --server-url";

/**
 * Asks an OpenAI-compatible server whether it can take requests, without generating anything:
 * llama-server's /health first, then /v1/models for servers that have no /health (vLLM has one,
 * OpenAI and Ollama do not). When healthy, llama-server's /props tells how many slots it has.
 */
export async function probeServer(target: ProbeTarget, signal: AbortSignal): Promise<BackendHealth> {
  let status: number;
  try {
    status = (await get(target, "/health", signal)).status;
  } catch (err) {
    return { healthy: false, detail: unreachableDetail(err) };
  }
  if (status === 503) return { healthy: false, detail: "loading model" };
  if (status !== 200) {
    const models = await get(target, "/v1/models", signal).then(
      (res) => res.status,
      (err: unknown) => describeFetchError(err),
    );
    if (models !== 200) {
      const what = typeof models === "number" ? `HTTP ${models}` : models;
      return { healthy: false, detail: `no usable /health or /v1/models (${what}); check --server-url` };
    }
  }
  return { healthy: true, ...(await readProps(target, signal)) };
}

// /props is llama-server only; a missing or odd value means "unknown", never unhealthy.
async function readProps(
  target: ProbeTarget,
  signal: AbortSignal,
): Promise<Pick<BackendHealth, "slots" | "contextTokens">> {
  try {
    const { status, body } = await get(target, "/props", signal, true);
    if (status !== 200) return {};
    const props = body as {
      total_slots?: unknown;
      default_generation_settings?: { n_ctx?: unknown };
    };
    const slots = positiveInteger(props?.total_slots);
    const contextTokens = positiveInteger(props?.default_generation_settings?.n_ctx);
    return { ...(slots ? { slots } : {}), ...(contextTokens ? { contextTokens } : {}) };
  } catch {
    return {};
  }
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * One GET within the probe timeout, the body read too (as JSON when `json`, else discarded: an
 * unread body would hold the connection).
 */
async function get(
  target: ProbeTarget,
  path: string,
  signal: AbortSignal,
  json = false,
): Promise<{ status: number; body?: unknown }> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (target.apiKey) headers["authorization"] = `Bearer ${target.apiKey}`;
  const call = new CallSignal({ deadline: Date.now() + target.timeoutMs, sources: [signal] });
  try {
    const res = await target.fetch(`${target.root}${path}`, { headers, signal: call.signal });
    if (json && res.status === 200) return { status: res.status, body: await res.json() };
    await res.body?.cancel();
    return { status: res.status };
  } finally {
    call.dispose();
  }
}

/** The health detail for a server that cannot be connected to. */
export function unreachableDetail(err: unknown): string {
  return `unreachable (${describeFetchError(err)}); ${START_SERVER_HINT}`;
}

/** "connection refused", "host not found", ... from the first system error code in the cause chain. */
function describeFetchError(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
    return "no answer in time";
  }
  let code: string | undefined;
  for (let e: unknown = err; e && code === undefined; e = (e as { cause?: unknown }).cause) {
    const candidate = (e as { code?: unknown }).code;
    // Wrappers (BackendError, the SDK's errors) carry codes of their own; only system codes say why.
    if (typeof candidate === "string" && /^(E[A-Z]+|UND_ERR\w*)$/.test(candidate)) code = candidate;
  }
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    default:
      return code ?? "connection failed";
  }
}
