/** Inbound MQTT message → intent: the protocol edge where all client input is validated (B5). */

import type { SamplingParameters } from "../backends/types.js";
import { idField, isJsonObject, toFiniteNumber, type JsonObject } from "./coerce.js";
import { parseCancel, parseSessionCommand, parseTemplate } from "./commands.js";
import {
  parseJson,
  promptText,
  rejected,
  sizePayload,
  type InboundContext,
  type RejectionContext,
} from "./payload.js";
import { hooksFor } from "../projects/presets.js";
import { PyJsonDepthError } from "./pyjson.js";
import { MAX_TOPIC_BYTES, resolveReplyTopic } from "./replyTopic.js";
import { newDefaultSessionId, toSessionId, topicSafeSessionId } from "./sessionId.js";
import { streamTopic } from "./stream.js";
import { routeTopic } from "./topics.js";
import { readImages, readResponseFormat, readStream, type FieldResult } from "./turnOptions.js";
import type {
  InboundIntent,
  Mqtt5Request,
  ReplyFormat,
  ReplyTarget,
  ResponseFormat,
  TurnKind,
  TurnRequest,
} from "./types.js";

export type { InboundContext } from "./payload.js";
export type { Mqtt5Request } from "./types.js";

/**
 * What one message on one of our topics asks for; undefined only when the topic is not ours.
 * `mqtt5`: the message's MQTT 5 properties, when it came over MQTT 5 (PROTOCOL C2). They apply to
 * turns only; commands answer on their fixed notice topics.
 */
export function parseInbound(
  topic: string,
  payload: Buffer,
  ctx: InboundContext,
  mqtt5?: Mqtt5Request,
): InboundIntent | undefined {
  const route = routeTopic(topic, ctx.projects);
  if (route === undefined) return undefined;
  switch (route.kind) {
    case "user_input":
      return parseTurn(route.project, "chat", payload, ctx, mqtt5);
    case "state":
      return parseTurn(route.project, "state", payload, ctx, mqtt5);
    case "cancel":
      return parseCancel(route.project, payload, ctx);
    case "template":
      return parseTemplate(route, payload, ctx);
    case "clear_history":
    case "delete_session":
      return parseSessionCommand(route, route.kind, payload, ctx);
  }
}

interface TurnScope {
  project: string;
  kind: TurnKind;
  /** Reply topics are `<base>/<sessionId>[/...]`. */
  base: string;
  /** How replies on `base` are written when the turn does not use the envelope. */
  format: ReplyFormat;
  ctx: InboundContext;
  mqtt5?: Mqtt5Request;
}

function parseTurn(
  project: string,
  kind: TurnKind,
  payload: Buffer,
  ctx: InboundContext,
  mqtt5: Mqtt5Request | undefined,
): InboundIntent {
  const scope: TurnScope =
    kind === "chat"
      ? { project, kind, base: `${project}/assistant_response`, format: "text", ctx, mqtt5 }
      : { project, kind, base: `${project}/hint`, format: "maze", ctx, mqtt5 };
  const sized = sizePayload(payload, ctx.limits.maxPayloadBytes);
  const parsed = sized.text === undefined ? undefined : parseJson(sized.text);
  if (parsed?.ok && isJsonObject(parsed.value)) {
    return objectTurn(scope, parsed.value, sized.text ?? "", sized.oversize);
  }

  // Without a JSON object there is no sessionId and no replyTopic: a one-off session (A2).
  const sessionId = newDefaultSessionId();
  const about = { sessionId, reply: replyTarget(scope, sessionId, undefined, undefined) };
  if (sized.oversize !== undefined) return rejected(project, "payload_too_large", sized.oversize, about);
  const text = sized.text;
  if (kind === "state") {
    return rejected(project, "invalid_request", `${project} state must be a JSON object`, about);
  }
  if (parsed?.ok && Array.isArray(parsed.value)) {
    return rejected(project, "invalid_request", "payload must be a JSON object or plain text", about);
  }
  // A JSON string is a quoted message; other JSON scalars are plain text that happens to parse.
  const message = parsed?.ok && typeof parsed.value === "string" ? parsed.value : text;
  const problem = messageProblem(message, ctx.limits.maxMessageChars);
  if (problem !== undefined) return rejected(project, "invalid_request", problem, about);
  const turn: TurnRequest = { project, sessionId, kind, content: message, sampling: {}, reply: about.reply };
  return { type: "turn", turn };
}

/**
 * Where a turn's replies go and how they are written. An MQTT 5 Response Topic property wins over
 * the payload's replyTopic; both obey the same safety rules (A4, B11, C2). The envelope (C1) is
 * used when the turn asks for it, or says nothing and its project is configured for it.
 */
function replyTarget(
  scope: TurnScope,
  sessionId: string,
  replyTopic: unknown,
  responseFormat: ResponseFormat | undefined,
): ReplyTarget {
  const { responseTopic, correlationData } = scope.mqtt5 ?? {};
  const resolved =
    responseTopic !== undefined
      ? resolveReplyTopic(scope.base, sessionId, responseTopic, "Response Topic property")
      : resolveReplyTopic(scope.base, sessionId, replyTopic);
  if (resolved.warning !== undefined) scope.ctx.warn?.(resolved.warning);
  const json = (responseFormat ?? projectFormat(scope)) === "json";
  const reply: ReplyTarget = { topic: resolved.topic, format: json ? "json" : scope.format };
  if (correlationData !== undefined) reply.correlationData = correlationData;
  return reply;
}

function projectFormat(scope: TurnScope): ResponseFormat {
  return scope.ctx.jsonProjects?.has(scope.project) === true ? "json" : "text";
}

function objectTurn(
  scope: TurnScope,
  obj: JsonObject,
  text: string,
  oversize: string | undefined,
): InboundIntent {
  const { project, kind, ctx } = scope;
  const requestedId = toSessionId(exactSessionIdField(obj, text));
  const sessionId =
    requestedId.ok && requestedId.sessionId !== undefined
      ? topicSafeSessionId(requestedId.sessionId)
      : newDefaultSessionId();
  // Read first so that even a refusal of this message is written the way the client asked.
  const responseFormat = readResponseFormat(obj.responseFormat);
  const about: RejectionContext & { sessionId: string; reply: ReplyTarget } = {
    sessionId,
    reply: replyTarget(
      scope,
      sessionId,
      obj.replyTopic,
      responseFormat.ok ? responseFormat.value : undefined,
    ),
  };
  const clientId = idField(obj.clientId);
  const requestId = idField(obj.requestId);
  if (clientId !== undefined) about.clientId = clientId;
  if (requestId !== undefined) about.requestId = requestId;
  const fail = (code: "invalid_request" | "payload_too_large", detail: string) =>
    rejected(project, code, detail, about);

  if (oversize !== undefined) return fail("payload_too_large", oversize);
  if (!requestedId.ok) return fail("invalid_request", requestedId.reason);
  const images = readImages(obj.images);
  let content: string;
  if (kind === "chat") {
    const chat = chatContent(obj.message, images, ctx.limits.maxMessageChars);
    if (chat.problem !== undefined) return fail("invalid_request", chat.problem);
    content = chat.content;
  } else {
    try {
      content = stateToUserTurn(project, obj);
    } catch (err) {
      if (err instanceof PyJsonDepthError) return fail("invalid_request", `${project} state: ${err.message}`);
      throw err;
    }
  }
  const sampling = readSampling(obj, ctx.maxTokensLimit);
  if (typeof sampling === "string") return fail("invalid_request", sampling);
  const systemPrompt = obj.systemPrompt;
  if (systemPrompt !== undefined && systemPrompt !== null && typeof systemPrompt !== "string") {
    return fail("invalid_request", "systemPrompt must be a string");
  }
  if (!images.ok) return fail("invalid_request", images.problem);
  if (!responseFormat.ok) return fail("invalid_request", responseFormat.problem);
  const responseSchema = ctx.replySchemas.read(obj.responseSchema);
  if (!responseSchema.ok) return fail("invalid_request", responseSchema.problem);
  const stream = readStream(obj.stream);
  if (!stream.ok) return fail("invalid_request", stream.problem);
  if (stream.value === true && Buffer.byteLength(streamTopic(about.reply.topic), "utf8") > MAX_TOPIC_BYTES) {
    return fail("invalid_request", "the reply topic is too long to add /stream to it");
  }

  const turn: TurnRequest = { project, sessionId, kind, content, sampling, reply: about.reply };
  // The original fell back to prompt_template when systemPrompt was empty, not only when absent.
  const prompt = promptText(systemPrompt) ?? promptText(obj.prompt_template);
  if (prompt !== undefined) turn.systemPrompt = prompt;
  if (clientId !== undefined) turn.clientId = clientId;
  if (requestId !== undefined) turn.requestId = requestId;
  if (stream.value !== undefined) turn.stream = stream.value;
  if (responseFormat.value !== undefined) turn.responseFormat = responseFormat.value;
  if (images.value !== undefined) turn.images = images.value;
  if (responseSchema.value !== undefined) turn.responseSchema = responseSchema.value;
  return { type: "turn", turn };
}

/** A game-state snapshot as its project makes it a user turn; only such projects have a state route. */
function stateToUserTurn(project: string, snapshot: JsonObject): string {
  const toUserTurn = hooksFor(project)?.stateToUserTurn;
  if (!toUserTurn) throw new Error(`project ${project} takes no game states`);
  return toUserTurn(snapshot);
}

/**
 * The user turn of a chat message. With at least one image the message may be missing or blank
 * (an image-only turn, content `""`); then a problem with the images is the one worth reporting.
 */
function chatContent(
  message: unknown,
  images: FieldResult<string[]>,
  maxChars: number,
): { content: string; problem?: undefined } | { problem: string } {
  const blank = isAbsent(message) || (typeof message === "string" && message.trim() === "");
  if (blank && images.ok && images.value !== undefined) return { content: "" };
  if (blank && !images.ok) return { problem: images.problem };
  const problem = messageProblem(message, maxChars);
  return problem === undefined ? { content: message as string } : { problem };
}

function isAbsent(value: unknown): boolean {
  return value === undefined || value === null;
}

/**
 * JSON.parse rounds integers beyond 2^53, yet 64-bit numeric user ids are common; recover the
 * digits the client actually sent, as Python's json module would have kept them.
 */
function exactSessionIdField(obj: JsonObject, text: string): unknown {
  const value = obj.sessionId;
  if (typeof value !== "number" || !Number.isInteger(value) || Number.isSafeInteger(value)) return value;
  const match = /"sessionId"\s*:\s*(-?\d+)\s*[,}]/.exec(text);
  return match?.[1] !== undefined && Number(match[1]) === value ? match[1] : value;
}

function messageProblem(message: unknown, maxChars: number): string | undefined {
  if (typeof message !== "string" || message.trim() === "") return "message must be a non-empty string";
  if (message.length > maxChars && codePoints(message) > maxChars) {
    return `message is longer than ${maxChars} characters`;
  }
  return undefined;
}

// Python's len() counts code points; UTF-16 length would over-count emoji and other astral text.
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

interface SamplingRule {
  key: keyof SamplingParameters;
  min: number;
  max: number;
  integer: boolean;
}

/** Validated and clamped sampling overrides, or the reason they are unusable. */
function readSampling(obj: JsonObject, maxTokensLimit: number): Partial<SamplingParameters> | string {
  const rules: SamplingRule[] = [
    { key: "temperature", min: 0, max: 2, integer: false },
    { key: "topP", min: 0, max: 1, integer: false },
    { key: "maxTokens", min: 1, max: maxTokensLimit, integer: true },
  ];
  const sampling: Partial<SamplingParameters> = {};
  for (const { key, min, max, integer } of rules) {
    const raw = obj[key];
    // null is how many JSON encoders write "not set"; the original treated it as absent too.
    if (isAbsent(raw)) continue;
    const value = toFiniteNumber(raw);
    if (value === undefined) return `${key} must be a number`;
    sampling[key] = Math.min(max, Math.max(min, integer ? Math.floor(value) : value));
  }
  return sampling;
}
