/** What llmqtt publishes on reply topics (PROTOCOL A5, A6, A8; envelope C1; MQTT 5 properties C2). */

import type { TokenUsage } from "../backends/types.js";
import { pyJson } from "./pyjson.js";
import type { ErrorCode, GatewayError, ReplyTarget, TurnRequest } from "./types.js";

/** The client-facing sentence for each failure; the first two are the original gateway's words. */
export const ERROR_TEXT: Readonly<Record<ErrorCode, string>> = {
  overloaded: "Server is overloaded. Please try again in a moment.",
  rate_limited: "Rate limit exceeded. Please slow down your requests.",
  invalid_request: "Invalid request.",
  payload_too_large: "Payload too large.",
  model_unavailable: "The model server is unreachable right now. Please try again shortly.",
  timeout: "The model server timed out before answering. Please try again.",
  context_overflow:
    "The conversation is too long for the model's context. Clear the history or send a shorter message.",
  model_error: "The model server could not answer this request.",
  invalid_reply: "The model's reply did not match the required JSON schema, twice.",
  shutting_down: "The server is shutting down. Please retry in a moment.",
  store_unavailable: "The gateway cannot reach its session store right now. Please try again shortly.",
  internal: "Something went wrong inside the gateway. Please try again.",
  cancelled: "The request was cancelled.",
  expired: "The request expired before the model could take it.",
};

/** Whether repeating the same request later can succeed. */
export const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  overloaded: true,
  rate_limited: true,
  invalid_request: false,
  payload_too_large: false,
  model_unavailable: true,
  timeout: true,
  context_overflow: false,
  model_error: false,
  // llmqtt has already asked twice; a server that ignores the schema will not do better.
  invalid_reply: false,
  shutting_down: true,
  store_unavailable: true,
  internal: false,
  cancelled: false,
  expired: false,
};

/** `detail` must be safe to show to the client: no secrets, no stack traces. */
export function errorMessage(code: ErrorCode, detail?: string): string {
  const base = ERROR_TEXT[code];
  if (detail === undefined || detail === "") return base;
  if (code === "invalid_request" || code === "payload_too_large") return `${base.slice(0, -1)}: ${detail}`;
  return base.endsWith(".") ? `${base.slice(0, -1)} (${detail}).` : `${base} (${detail})`;
}

export function gatewayError(code: ErrorCode, detail?: string): GatewayError {
  return { code, message: errorMessage(code, detail), retryable: RETRYABLE[code] };
}

/** Ids a failure reply names in the envelope; absent ones are written as null. */
export interface FailureIds {
  sessionId?: string;
  requestId?: string;
}

/**
 * The reply a client gets instead of an answer, in the form its reply target expects: `Error: ...`
 * on text topics and `{"error": "..."}` on maze topics (A8), or the envelope
 * `{"error": {"code", "message", "retryable"}, "sessionId", "requestId"}` (C1). A TurnRequest or
 * a rejected intent can be passed as `ids`.
 */
export function formatFailure(target: ReplyTarget, error: GatewayError, ids: FailureIds): string {
  switch (target.format) {
    case "text":
      return `Error: ${error.message}`;
    case "maze":
      return JSON.stringify({ error: error.message });
    case "json":
      return JSON.stringify({
        error: errorJson(error),
        sessionId: ids.sessionId ?? null,
        requestId: ids.requestId ?? null,
      });
  }
}

/** A model answer, as the turn's reply target expects it. */
export interface Answer {
  text: string;
  finishReason: string;
  usage?: TokenUsage;
  latencyMs: number;
}

/**
 * The reply to an answered turn: the model's text raw (A8; for maze tool calls the action JSON),
 * or for `"json"` targets the envelope `{"response", "sessionId", "requestId", "clientId",
 * "finishReason", "usage", "latencyMs"}` (C1), absent ids and usage written as null.
 */
export function formatAnswer(turn: TurnRequest, answer: Answer): string {
  if (turn.reply.format !== "json") return answer.text;
  return JSON.stringify({
    response: answer.text,
    sessionId: turn.sessionId,
    requestId: turn.requestId ?? null,
    clientId: turn.clientId ?? null,
    finishReason: answer.finishReason,
    usage: usageJson(answer.usage),
    latencyMs: Math.round(answer.latencyMs),
  });
}

/** The error object of the envelope and of stream chunks. */
export function errorJson(error: GatewayError): { code: string; message: string; retryable: boolean } {
  return { code: error.code, message: error.message, retryable: error.retryable };
}

/**
 * Token usage as written in the envelope and stream chunks; null when the server reported none.
 * `cachedTokens` (prompt tokens reused from the server's cache) only when the server reported it.
 */
export function usageJson(usage: TokenUsage | undefined): TokenUsage | null {
  if (usage === undefined) return null;
  const { promptTokens, completionTokens, cachedTokens } = usage;
  return cachedTokens === undefined
    ? { promptTokens, completionTokens }
    : { promptTokens, completionTokens, cachedTokens };
}

/**
 * MQTT 5 publish properties of a reply (C2): the request's Correlation Data, and user properties
 * `requestId` (only when the request had one), `sessionId` and `status`. Shaped for MQTT.js's
 * publish options (`properties`); it has no undefined values, which MQTT.js refuses.
 */
export interface ReplyProperties {
  correlationData?: Buffer;
  userProperties: Record<string, string>;
}

export function replyProperties(
  target: ReplyTarget,
  ids: { requestId?: string; sessionId: string },
  status: "ok" | "error",
): ReplyProperties {
  const { requestId, sessionId } = ids;
  const userProperties: Record<string, string> =
    requestId === undefined ? { sessionId, status } : { requestId, sessionId, status };
  return target.correlationData === undefined
    ? { userProperties }
    : { correlationData: target.correlationData, userProperties };
}

/** A maze notice such as `{"hint": "Template updated"}`, spaced as the original wrote it. */
export function formatNotice(hint: string): string {
  return pyJson({ hint });
}
