/** The one interface every model server implementation offers to the rest of llmqtt. */

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** Image URLs (data: or http(s):) sent with this user message; never kept in history. */
  images?: string[];
}

export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export interface ToolCall {
  name: string;
  /** Raw JSON text of the arguments as the model produced it; may be malformed. */
  arguments: string;
}

/**
 * A reply constrained to JSON (PROTOCOL C7): what a model server needs to constrain its output,
 * through `response_format` or a grammar.
 */
export interface JsonReplySchema {
  /** Names the schema to the server (OpenAI's `json_schema.name`: letters, digits, `_`, `-`). */
  name: string;
  /** A JSON Schema (2020-12) the reply must match; `{"type": "object"}` for any JSON object. */
  schema: Readonly<Record<string, unknown>>;
  /** The schema meets OpenAI's strict-mode rules, so such a server may be asked to enforce it exactly. */
  strict: boolean;
  /** The schema as JSON text: the key of caches of what is built from it (grammars). */
  key: string;
}

export interface SamplingParameters {
  temperature: number;
  topP: number;
  maxTokens: number;
}

export interface ChatRequest extends SamplingParameters {
  /** Read-only: they are often the session's stored messages themselves. */
  messages: readonly Readonly<ChatMessage>[];
  tools?: ToolDefinition[];
  toolChoice?: "auto" | "required" | "none";
  /** Constrain the reply to JSON matching this schema; never together with tools. */
  replySchema?: JsonReplySchema;
  /** Sent as chat_template_kwargs.enable_thinking (llama.cpp, vLLM). */
  enableThinking: boolean;
  /** Absolute epoch milliseconds after which the turn has failed (the per-turn deadline). */
  deadline: number;
  /**
   * When set, the backend streams and calls this with each piece of visible text as it is
   * generated (never reasoning text); the returned ChatResult still holds the whole reply.
   */
  onDelta?: (text: string) => void;
  /**
   * Identifies a conversation for backend pools: calls with the same key go to the same server
   * while it has a free slot, so the server can reuse the prompt cache of that conversation.
   */
  affinityKey?: string;
  /**
   * Set by a pool when another server can take the call: one attempt here, then the pool fails
   * over at once instead of waiting out this server's retries.
   */
  singleAttempt?: boolean;
}

export interface TokenUsage {
  /** The whole prompt, whether evaluated for this call or reused from the server's cache. */
  promptTokens: number;
  completionTokens: number;
  /**
   * Prompt tokens the server reused from its prompt cache instead of evaluating them again;
   * undefined when the server does not say. The rest of the prompt was evaluated.
   */
  cachedTokens?: number;
}

export interface ChatResult {
  /** The assistant's visible text; reasoning content is never included. */
  text: string;
  toolCalls: ToolCall[];
  finishReason: string;
  usage?: TokenUsage;
}

export type BackendErrorCode =
  | "unreachable" // connection refused/reset, DNS, server down
  | "timeout" // the per-turn deadline passed
  | "server_error" // 5xx after retries
  | "rate_limited" // 429 after retries
  | "context_overflow" // prompt longer than the model's context
  | "invalid_request" // other 4xx: the request itself is wrong
  | "unsupported" // the server cannot do what was asked (e.g. images)
  | "cancelled"; // the caller aborted

export interface BackendErrorDetails {
  status?: number;
  /** For context_overflow: the prompt's size and the context size, when the server reports them. */
  promptTokens?: number;
  contextTokens?: number;
  /**
   * For a streamed call that failed after text was already delivered through `onDelta`: that
   * text. Such a failure is final; a retry would repeat what the caller has already sent on.
   */
  partialText?: string;
  cause?: unknown;
}

export class BackendError extends Error {
  readonly status?: number;
  readonly promptTokens?: number;
  readonly contextTokens?: number;
  readonly partialText?: string;

  constructor(
    readonly code: BackendErrorCode,
    message: string,
    details: BackendErrorDetails = {},
  ) {
    super(message, { cause: details.cause });
    this.name = "BackendError";
    this.status = details.status;
    this.promptTokens = details.promptTokens;
    this.contextTokens = details.contextTokens;
    this.partialText = details.partialText;
  }

  get retryable(): boolean {
    return (
      this.code === "unreachable" ||
      this.code === "timeout" ||
      this.code === "server_error" ||
      this.code === "rate_limited"
    );
  }
}

export interface BackendHealth {
  healthy: boolean;
  /** Parallel generations the server can run (llama-server `total_slots`), when known. */
  slots?: number;
  /**
   * Context tokens of each slot, when known (llama-server `/props` default_generation_settings.n_ctx;
   * the in-process model's context per sequence): prompt and reply together must fit it.
   */
  contextTokens?: number;
  /** Human-readable reason when unhealthy. */
  detail?: string;
}

export interface ModelBackend {
  readonly name: string;
  /** Probe the server once and keep probing in the background; never throws for a down server. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Read-only: it may be the backend's own record. */
  health(): Readonly<BackendHealth>;
  /** Called whenever health or slot count changes. */
  onHealthChange(listener: (health: Readonly<BackendHealth>) => void): void;
  chat(request: ChatRequest, signal?: AbortSignal): Promise<ChatResult>;
}
