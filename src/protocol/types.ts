import type { SamplingParameters } from "../backends/types.js";
import type { ReplySchema } from "./replySchema.js";

/** How error replies and notices are written on a reply topic (PROTOCOL A8). */
export type ReplyFormat =
  /** `P/assistant_response/...`: raw text; errors are plain text starting `Error: `. */
  | "text"
  /** `maze/hint/...`: errors and notices are JSON objects (`{"error": ...}`, `{"hint": ...}`). */
  | "maze"
  /** The JSON envelope (PROTOCOL C1), on any topic: the turn or its project asked for it. */
  | "json";

export interface ReplyTarget {
  topic: string;
  format: ReplyFormat;
  /** MQTT 5 Correlation Data of the request (C2), to echo on every reply to it. */
  correlationData?: Buffer;
}

/** What a turn asked for with `"responseFormat"`: the raw reply (part A) or the envelope (C1). */
export type ResponseFormat = "text" | "json";

/** The MQTT 5 properties of an inbound request that matter to its reply (PROTOCOL C2). */
export interface Mqtt5Request {
  responseTopic?: string;
  correlationData?: Buffer;
}

/** A chat message (`P/user_input`) or a game-state snapshot (`P/state`, PROTOCOL A3). */
export type TurnKind = "chat" | "state";

/** A validated request for one model turn, as produced by the protocol edge. */
export interface TurnRequest {
  project: string;
  /** Topic-safe session id (PROTOCOL B10). */
  sessionId: string;
  kind: TurnKind;
  /** The user turn: the chat message, or the snapshot as its project made it a user turn (A3). */
  content: string;
  /** Client overrides, already validated and clamped; absent fields mean configured defaults. */
  sampling: Partial<SamplingParameters>;
  /** A system prompt the client asked for on this turn (`systemPrompt` / `prompt_template`). */
  systemPrompt?: string;
  reply: ReplyTarget;
  clientId?: string;
  requestId?: string;
  /** `"stream"` as sent (C3): when true, chunks also go to `streamTopic(reply.topic)`. */
  stream?: boolean;
  /**
   * `"responseFormat"` as sent (C1). `reply.format` is what to write: `"json"` when this is
   * `"json"`, or when it is absent and the project is configured for the envelope.
   */
  responseFormat?: ResponseFormat;
  /** Images for the user turn (C4): `data:image/...;base64,...` or `http(s)://` URLs, never empty. */
  images?: string[];
  /** `"responseSchema"` as sent, compiled (C7): the reply must be JSON matching it. */
  responseSchema?: ReplySchema;
}

export type ErrorCode =
  | "invalid_request"
  | "payload_too_large"
  | "overloaded"
  | "rate_limited"
  | "model_unavailable"
  | "timeout"
  | "context_overflow"
  | "model_error"
  | "invalid_reply"
  | "shutting_down"
  | "store_unavailable"
  | "internal"
  /** Cancelled by `P/cancel` while it waited or ran (C9). */
  | "cancelled"
  /** Its MQTT 5 Message Expiry Interval ran out while it waited (C9). */
  | "expired";

export interface GatewayError {
  code: ErrorCode;
  /** Human-readable, safe to show to the client (no secrets, no stack). */
  message: string;
  retryable: boolean;
}

/** What one inbound MQTT message asks llmqtt to do. */
export type InboundIntent =
  | { type: "turn"; turn: TurnRequest }
  | {
      type: "template";
      project: string;
      /** Undefined: the project's default prompt and every session of the project (A5). */
      sessionId?: string;
      prompt: string;
      reset: boolean;
    }
  | {
      type: "clear_history" | "delete_session";
      project: string;
      /** Undefined: every session of the project (A6). */
      sessionId?: string;
    }
  | {
      /** `P/cancel` (C9): cancel the session's turn with this request id, waiting or running. */
      type: "cancel";
      project: string;
      sessionId: string;
      requestId: string;
    }
  | {
      /** The message could not be accepted; answer on `reply` when one could be determined. */
      type: "rejected";
      project: string;
      sessionId?: string;
      error: GatewayError;
      reply?: ReplyTarget;
      clientId?: string;
      requestId?: string;
    };
