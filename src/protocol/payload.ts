/** Pieces every inbound parser shares: decoding, JSON, limits and the rejection shape. */

import { isJsonObject } from "./coerce.js";
import { gatewayError } from "./outbound.js";
import type { RequestSchemas } from "./replySchema.js";
import type { ErrorCode, InboundIntent, ReplyTarget } from "./types.js";

export interface InboundContext {
  projects: ReadonlySet<string>;
  limits: { maxPayloadBytes: number; maxMessageChars: number };
  /** Ceiling a client's maxTokens is clamped to. */
  maxTokensLimit: number;
  /**
   * Projects whose turns get the JSON envelope (PROTOCOL C1) unless a turn says
   * `"responseFormat": "text"`; absent means none.
   */
  jsonProjects?: ReadonlySet<string>;
  /** Checks and compiles a turn's `"responseSchema"` (C7). */
  replySchemas: RequestSchemas;
  /** Receives problems that do not stop the message (an ignored replyTopic, ...), for the log. */
  warn?: (message: string) => void;
}

export type Rejected = Extract<InboundIntent, { type: "rejected" }>;

// Non-fatal: invalid UTF-8 becomes U+FFFD instead of dropping the message; a BOM is skipped.
const decoder = new TextDecoder("utf-8");

export function decodePayload(payload: Buffer): string {
  return decoder.decode(payload);
}

export type ParsedJson = { ok: true; value: unknown } | { ok: false };

export function parseJson(text: string): ParsedJson {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

export type SizedPayload =
  | { oversize?: undefined; text: string }
  /** `text` is absent when the payload is too large even to look into. */
  | { oversize: string; text?: string };

/**
 * Payloads over the limit are refused, but up to 4x the limit are still decoded so the refusal
 * can reach the sender's reply topic; beyond that, parsing would cost more than it is worth.
 */
export function sizePayload(payload: Buffer, maxBytes: number): SizedPayload {
  if (payload.length <= maxBytes) return { text: decodePayload(payload) };
  const oversize = `${payload.length} bytes, the limit is ${maxBytes} bytes`;
  return payload.length > 4 * maxBytes ? { oversize } : { oversize, text: decodePayload(payload) };
}

/** A trimmed, non-blank prompt from a string or from an object's `content` (or `template`). */
export function promptText(value: unknown): string | undefined {
  if (isJsonObject(value)) return nonBlank(value.content) ?? nonBlank(value.template);
  return nonBlank(value);
}

function nonBlank(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

export interface RejectionContext {
  sessionId?: string;
  reply?: ReplyTarget;
  clientId?: string;
  requestId?: string;
}

export function rejected(
  project: string,
  code: ErrorCode,
  detail: string,
  about: RejectionContext,
): Rejected {
  const intent: Rejected = { type: "rejected", project, error: gatewayError(code, detail) };
  if (about.sessionId !== undefined) intent.sessionId = about.sessionId;
  if (about.reply !== undefined) intent.reply = about.reply;
  if (about.clientId !== undefined) intent.clientId = about.clientId;
  if (about.requestId !== undefined) intent.requestId = about.requestId;
  return intent;
}
