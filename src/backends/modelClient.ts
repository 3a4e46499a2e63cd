import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";

export interface ModelClientOptions {
  /** The server root without /v1, e.g. http://127.0.0.1:8080. */
  root: string;
  apiKey?: string;
  /** Replaces undici's fetch over the client's own Agent (tests, proxies). */
  fetch?: typeof fetch;
}

/** The openai SDK for one model server, over connections of its own. */
export interface ModelClient {
  readonly openai: OpenAI;
  /** The fetch the SDK uses, for requests beside it (health probes). */
  readonly fetch: typeof fetch;
  /** Closes the connections; later calls fail. */
  close(): Promise<void>;
}

// The SDK insists on a key; servers without auth ignore it.
const PLACEHOLDER_API_KEY = "no-key";
// The per-turn deadline (an AbortSignal per call) is the only timeout: the SDK's own, 10 min by
// default, must never cut in first.
const SDK_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The openai SDK with retries off (llmqtt retries within the turn's deadline itself) over undici's
 * fetch and an Agent of its own: keep-alive connections, with TCP_NODELAY (undici's default), that
 * `close` can end at shutdown. llmqtt and the benchmark's bare forwarder both call servers so.
 */
export function createModelClient(options: ModelClientOptions): ModelClient {
  const agent = options.fetch ? undefined : new Agent();
  const fetchImpl =
    options.fetch ??
    // undici's fetch is the global one's twin, but its types are its own package's.
    (((input: string | URL, init?: RequestInit) =>
      undiciFetch(input, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch);
  const openai = new OpenAI({
    baseURL: `${options.root}/v1`,
    apiKey: options.apiKey || PLACEHOLDER_API_KEY,
    // Never pick up OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment for a foreign server.
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: SDK_TIMEOUT_MS,
    fetch: fetchImpl,
  });
  return {
    openai,
    fetch: fetchImpl,
    close: async () => {
      await agent?.destroy();
    },
  };
}
