/** Session maintenance commands: template updates (A5), clear and delete (A6), cancel (C9). */

import { idField, isJsonObject, toBool, type JsonObject } from "./coerce.js";
import {
  parseJson,
  promptText,
  rejected,
  sizePayload,
  type InboundContext,
  type Rejected,
} from "./payload.js";
import { hasStateTopic } from "../projects/presets.js";
import { toSessionId, topicSafeSessionId } from "./sessionId.js";
import type { Route } from "./topics.js";
import type { ErrorCode, InboundIntent, ReplyTarget } from "./types.js";

/** Where the prompt may be, in the original's order of preference plus our camelCase spelling. */
const TEMPLATE_PROMPT_KEYS = ["template", "system_prompt", "prompt_template", "systemPrompt"];
const TEMPLATE_TARGET_KEYS = ["session_id", "sessionId"];
const COMMAND_TARGET_KEYS = ["session_id", "sessionId", "target"];

export function parseTemplate(route: Route, payload: Buffer, ctx: InboundContext): InboundIntent {
  const { project } = route;
  const body = readBody(payload, ctx);
  const obj = isJsonObject(body.value) ? body.value : undefined;
  const target = commandTarget(obj, TEMPLATE_TARGET_KEYS, route.topicSessionId);
  const fail = (code: ErrorCode, detail: string) => reject(project, target.sessionId, code, detail);

  if (body.oversize !== undefined) return fail("payload_too_large", body.oversize);
  if (obj === undefined) return fail("invalid_request", "template payload must be a JSON object");
  if (target.problem !== undefined) return fail("invalid_request", target.problem);
  let prompt: string | undefined;
  for (const key of TEMPLATE_PROMPT_KEYS) {
    prompt = promptText(obj[key]);
    if (prompt !== undefined) break;
  }
  if (prompt === undefined) {
    return fail("invalid_request", `template payload has no prompt (${TEMPLATE_PROMPT_KEYS.join(", ")})`);
  }
  let reset = true;
  if (obj.reset !== undefined && obj.reset !== null) {
    const parsed = toBool(obj.reset);
    // The original took any truthy value as true; an unclear value keeps the safe default.
    if (parsed === undefined) ctx.warn?.(`template for ${project}: unclear reset value, using true`);
    reset = parsed ?? true;
  }
  return target.sessionId === undefined
    ? { type: "template", project, prompt, reset }
    : { type: "template", project, sessionId: target.sessionId, prompt, reset };
}

export function parseSessionCommand(
  route: Route,
  type: "clear_history" | "delete_session",
  payload: Buffer,
  ctx: InboundContext,
): InboundIntent {
  const { project } = route;
  const body = readBody(payload, ctx);
  // Anything that is not a JSON object carries no target; the topic may still name one.
  const obj = isJsonObject(body.value) ? body.value : undefined;
  const target = commandTarget(obj, COMMAND_TARGET_KEYS, route.topicSessionId);
  const sessionId = target.sessionId?.toLowerCase() === "all" ? undefined : target.sessionId;
  if (body.oversize !== undefined) return reject(project, sessionId, "payload_too_large", body.oversize);
  // Refused rather than ignored: falling through to "all sessions" would be a destructive guess.
  if (target.problem !== undefined) return reject(project, undefined, "invalid_request", target.problem);
  return sessionId === undefined ? { type, project } : { type, project, sessionId };
}

/**
 * `P/cancel` `{"sessionId", "requestId"}` (C9). A cancel names no reply topic, so a bad one is
 * only logged; the cancelled turn itself is answered on its own reply topic.
 */
export function parseCancel(project: string, payload: Buffer, ctx: InboundContext): InboundIntent {
  const body = readBody(payload, ctx);
  const fail = (code: ErrorCode, detail: string) => rejected(project, code, detail, {});
  if (body.oversize !== undefined) return fail("payload_too_large", body.oversize);
  if (!isJsonObject(body.value)) return fail("invalid_request", "cancel payload must be a JSON object");
  const session = toSessionId(body.value.sessionId);
  const requestId = idField(body.value.requestId);
  if (!session.ok || session.sessionId === undefined) {
    return fail("invalid_request", "cancel needs a sessionId (a string or a number)");
  }
  const sessionId = topicSafeSessionId(session.sessionId);
  if (requestId === undefined) {
    return rejected(project, "invalid_request", "cancel needs a requestId (a string or a number)", {
      sessionId,
    });
  }
  return { type: "cancel", project, sessionId, requestId };
}

interface Body {
  oversize?: string;
  /** The parsed JSON; undefined when the payload is not JSON or was too large to look into. */
  value?: unknown;
}

function readBody(payload: Buffer, ctx: InboundContext): Body {
  const sized = sizePayload(payload, ctx.limits.maxPayloadBytes);
  // Too large: the topic alone says which session to answer; the content is not trusted.
  if (sized.oversize !== undefined) return { oversize: sized.oversize };
  if (sized.text.trim() === "") return { value: {} };
  const parsed = parseJson(sized.text);
  return parsed.ok ? { value: parsed.value } : {};
}

interface Target {
  sessionId?: string;
  problem?: string;
}

/** The first session named by the payload's keys, else by the topic suffix; topic-safe. */
function commandTarget(obj: JsonObject | undefined, keys: readonly string[], topicSuffix?: string): Target {
  if (obj !== undefined) {
    for (const key of keys) {
      const result = toSessionId(obj[key]);
      if (!result.ok) return { problem: `${key} must be a string or a number` };
      if (result.sessionId !== undefined) return { sessionId: topicSafeSessionId(result.sessionId) };
    }
  }
  const fromTopic = toSessionId(topicSuffix);
  return fromTopic.ok && fromTopic.sessionId !== undefined
    ? { sessionId: topicSafeSessionId(fromTopic.sessionId) }
    : {};
}

/**
 * Where a command's notice or error goes (`{"hint": "Template updated"}`, ...): game clients listen
 * on `P/hint/<sid>` (`maze/hint/<sid>`); other projects, and commands for all sessions, have no
 * such topic.
 */
export function noticeTarget(project: string, sessionId: string | undefined): ReplyTarget | undefined {
  if (!hasStateTopic(project) || sessionId === undefined) return undefined;
  return { topic: `${project}/hint/${sessionId}`, format: "maze" };
}

function reject(project: string, sessionId: string | undefined, code: ErrorCode, detail: string): Rejected {
  return rejected(project, code, detail, { sessionId, reply: noticeTarget(project, sessionId) });
}
