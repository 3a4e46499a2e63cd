import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "openai";
import { BackendError } from "./types.js";

/** A failure of one attempt, with how long the server asked us to wait before the next one. */
export interface ClassifiedError {
  error: BackendError;
  retryAfterMs?: number;
  /** Never retry, whatever the code: e.g. a stream failed after part of it was delivered. */
  final?: boolean;
}

/** What error messages may mention about the server, already stripped of anything secret. */
export interface ErrorContext {
  /** The server's address without credentials, to tell the user which server failed. */
  server: string;
  /** Removes secrets (the API key) from text that came back from the server. */
  redact(text: string): string;
}

// llama-server says "exceeds the available context size"; vLLM and OpenAI say "maximum context length".
const CONTEXT_OVERFLOW_TEXT =
  /exceeds? the available context|context size|maximum context length|context[_ ]length[_ ]exceeded/i;
const MAX_SERVER_MESSAGE_CHARS = 300;

/** The caller gave up on the call (its signal aborted). */
export function requestCancelled(): BackendError {
  return new BackendError("cancelled", "request cancelled");
}

/** The turn's deadline passed before the model server answered. */
export function missedDeadline(): BackendError {
  return new BackendError("timeout", "the model server did not answer before the deadline");
}

export function classifyError(err: unknown, ctx: ErrorContext): ClassifiedError {
  if (err instanceof BackendError) return { error: err };
  if (err instanceof APIUserAbortError) return { error: requestCancelled() };
  // fetch rejects with its signal's reason: AbortSignal.timeout's is a TimeoutError.
  if (err instanceof Error && err.name === "TimeoutError") return { error: missedDeadline() };
  if (err instanceof Error && err.name === "AbortError") return { error: requestCancelled() };
  if (err instanceof APIConnectionTimeoutError) {
    return { error: new BackendError("timeout", `model server at ${ctx.server} timed out`) };
  }
  if (err instanceof APIConnectionError) {
    return { error: unreachable(ctx, err) };
  }
  if (err instanceof APIError && typeof err.status === "number") {
    return classifyStatus(err, err.status, ctx);
  }
  // undici reports a connection dropped while reading the body as a bare TypeError ("terminated").
  if (err instanceof TypeError) return { error: unreachable(ctx, err) };
  return {
    error: new BackendError("server_error", `unexpected response from model server at ${ctx.server}`, {
      cause: err,
    }),
  };
}

function classifyStatus(err: APIError, status: number, ctx: ErrorContext): ClassifiedError {
  const body = (typeof err.error === "object" && err.error !== null ? err.error : {}) as Record<
    string,
    unknown
  >;
  const detail = serverMessage(err, body, ctx);
  if (status === 429) {
    return {
      error: new BackendError("rate_limited", `model server rate limit exceeded (HTTP 429)${detail}`, {
        status,
        cause: err,
      }),
      retryAfterMs: retryAfterMs(err.headers),
    };
  }
  if (isImageRefusal(body)) {
    return {
      error: new BackendError("unsupported", `this model server cannot take images${detail}`, {
        status,
        cause: err,
      }),
    };
  }
  if (status >= 500) {
    return {
      error: new BackendError("server_error", `model server error (HTTP ${status})${detail}`, {
        status,
        cause: err,
      }),
    };
  }
  if (isContextOverflow(status, body)) {
    const promptTokens = numberOrUndefined(body["n_prompt_tokens"]);
    const contextTokens = numberOrUndefined(body["n_ctx"]);
    const sizes =
      promptTokens !== undefined && contextTokens !== undefined
        ? ` (${promptTokens} tokens, the context holds ${contextTokens})`
        : "";
    return {
      error: new BackendError("context_overflow", `prompt is too long for the model's context${sizes}`, {
        status,
        promptTokens,
        contextTokens,
        cause: err,
      }),
    };
  }
  return {
    error: new BackendError(
      "invalid_request",
      `model server rejected the request (HTTP ${status})${detail}`,
      {
        status,
        cause: err,
      },
    ),
  };
}

/** The same error, saying which text had already been delivered when it happened. */
export function withPartialText(error: BackendError, partialText: string): BackendError {
  return new BackendError(error.code, error.message, {
    status: error.status,
    promptTokens: error.promptTokens,
    contextTokens: error.contextTokens,
    partialText,
    cause: error.cause,
  });
}

/** llama-server without a vision projector answers images with a 500; retrying cannot help. */
const IMAGE_REFUSAL_TEXT = /image input is not supported|unsupported content part type|mmproj/i;

function isImageRefusal(body: Record<string, unknown>): boolean {
  return typeof body["message"] === "string" && IMAGE_REFUSAL_TEXT.test(body["message"]);
}

function isContextOverflow(status: number, body: Record<string, unknown>): boolean {
  if (status !== 400) return false;
  if (body["type"] === "exceed_context_size_error" || body["code"] === "exceed_context_size_error")
    return true;
  if (body["code"] === "context_length_exceeded") return true;
  return typeof body["message"] === "string" && CONTEXT_OVERFLOW_TEXT.test(body["message"]);
}

function unreachable(ctx: ErrorContext, cause: unknown): BackendError {
  return new BackendError("unreachable", `model server unreachable at ${ctx.server}`, { cause });
}

/** The server's own explanation, shortened and redacted, as a ": ..." suffix (or ""). */
function serverMessage(err: APIError, body: Record<string, unknown>, ctx: ErrorContext): string {
  const raw =
    typeof err.error === "string"
      ? err.error
      : typeof body["message"] === "string"
        ? body["message"]
        : bodylessMessage(err);
  if (!raw) return "";
  const text = ctx.redact(raw).replace(/\s+/g, " ").trim();
  if (!text) return "";
  const short = text.length > MAX_SERVER_MESSAGE_CHARS ? `${text.slice(0, MAX_SERVER_MESSAGE_CHARS)}…` : text;
  return `: ${short}`;
}

// Without a JSON `error` object the SDK puts the raw body text in its message after the status.
function bodylessMessage(err: APIError): string {
  const message = err.message.replace(/^\d{3}\s*/, "");
  return message === "status code (no body)" ? "" : message;
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Retry-After (seconds or HTTP date) or the non-standard retry-after-ms, as milliseconds. */
export function retryAfterMs(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  const ms = headers?.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers?.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
