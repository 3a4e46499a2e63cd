import { LlmqttError, type LlmqttErrorCode } from "./errors.js";

/**
 * Reading what the gateway sends back: the full reply (the JSON envelope of PROTOCOL C1, or the
 * raw text of part A from a gateway that does not write it) and stream chunks (C3).
 */

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens the model server reused from its cache, when it says. */
  cachedTokens?: number;
}

/** The answer to one request. */
export interface Reply {
  /** The model's text; for a game state, the hint JSON as text. */
  text: string;
  /** `stop`, `length`, `tool_calls`, ...; undefined from a gateway without the envelope. */
  finishReason?: string;
  usage?: Usage;
  requestId: string;
  sessionId: string;
  /** The topic the reply came in on. */
  topic: string;
  /** From publishing the request to the reply, measured by the client. */
  latencyMs: number;
}

export type ReplyBody = Pick<Reply, "text" | "finishReason" | "usage">;

/** The original gateway's overload and rate-limit sentences carry no `Error: ` prefix or code (A8). */
const KNOWN_TEXT_ERRORS: [RegExp, LlmqttErrorCode][] = [
  [/^Server is overloaded\./, "overloaded"],
  [/^(Error: )?Rate limit exceeded\./, "rate_limited"],
];

/** A full reply: the answer, or the error it reports. */
export function readReply(payload: string, requestId: string): ReplyBody | LlmqttError {
  const json = parseObject(payload);
  if (json !== undefined && "sessionId" in json) {
    if (typeof json.response === "string") {
      return {
        text: json.response,
        finishReason: stringOrUndefined(json.finishReason),
        usage: readUsage(json.usage),
      };
    }
    if (isObject(json.error)) return readError(json.error, requestId);
  }
  // Without the envelope: `{"error": "..."}` on hint topics, `Error: ...` on the others (A8).
  if (json !== undefined && typeof json.error === "string" && Object.keys(json).length === 1) {
    return new LlmqttError("unknown", json.error, false, requestId);
  }
  const known = KNOWN_TEXT_ERRORS.find(([pattern]) => pattern.test(payload.trim()));
  if (known) return new LlmqttError(known[1], payload.trim().replace(/^Error: /, ""), true, requestId);
  if (payload.startsWith("Error: ")) return new LlmqttError("unknown", payload.slice(7), false, requestId);
  return { text: payload };
}

/** One stream chunk: a piece of text, or the end of the stream with the answer or the error. */
export type StreamChunk =
  | { seq: number; delta: string }
  | { seq: number; done: true; reply: ReplyBody }
  | { seq: number; done: true; error: LlmqttError };

/** Undefined for a payload that is no chunk (it is then ignored). */
export function readChunk(payload: string, requestId: string): StreamChunk | undefined {
  const json = parseObject(payload);
  if (json === undefined || !Number.isInteger(json.seq) || (json.seq as number) < 0) return undefined;
  const seq = json.seq as number;
  if (json.done !== true) return typeof json.delta === "string" ? { seq, delta: json.delta } : undefined;
  if (isObject(json.error)) return { seq, done: true, error: readError(json.error, requestId) };
  if (typeof json.response !== "string") return undefined;
  const reply = {
    text: json.response,
    finishReason: stringOrUndefined(json.finishReason),
    usage: readUsage(json.usage),
  };
  return { seq, done: true, reply };
}

/**
 * Puts chunks back in `seq` order: an early one waits for those before it, a repeated one (QoS 1
 * redelivers after a reconnect) is dropped. `accept` returns what can be handed on now, in order.
 */
export class StreamAssembler {
  private next = 0;
  private readonly early = new Map<number, StreamChunk>();
  private ended = false;

  accept(chunk: StreamChunk): StreamChunk[] {
    if (this.ended || chunk.seq < this.next || this.early.has(chunk.seq)) return [];
    this.early.set(chunk.seq, chunk);
    const ready: StreamChunk[] = [];
    for (let head = this.early.get(this.next); head !== undefined; head = this.early.get(this.next)) {
      this.early.delete(this.next++);
      ready.push(head);
      if ("done" in head) {
        this.ended = true;
        break;
      }
    }
    return ready;
  }
}

function readError(error: Record<string, unknown>, requestId: string): LlmqttError {
  const code = typeof error.code === "string" ? (error.code as LlmqttErrorCode) : "unknown";
  const message = typeof error.message === "string" ? error.message : code;
  return new LlmqttError(code, message, error.retryable === true, requestId);
}

function readUsage(value: unknown): Usage | undefined {
  if (!isObject(value)) return undefined;
  const { promptTokens, completionTokens, cachedTokens } = value;
  if (typeof promptTokens !== "number" || typeof completionTokens !== "number") return undefined;
  return typeof cachedTokens === "number"
    ? { promptTokens, completionTokens, cachedTokens }
    : { promptTokens, completionTokens };
}

function parseObject(payload: string): Record<string, unknown> | undefined {
  if (!payload.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(payload);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
