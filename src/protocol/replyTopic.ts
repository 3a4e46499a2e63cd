/** Reply-topic resolution (PROTOCOL A4, B11). */

import { INVALID_TOPIC_CHARS } from "./topics.js";

export interface ResolvedReplyTopic {
  topic: string;
  /** Why a requested replyTopic was ignored, for the log. */
  warning?: string;
}

/** MQTT's limit on a topic name, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 65_535;

/**
 * The topic a turn's reply goes to: `<base>/<sessionId>` unless the client asked for a deeper
 * topic of its own session. Checking the first level against the session id keeps one client from
 * steering replies into another session's topic (B11) while allowing the
 * `<base>/<sid>/<clientId>/<requestId>` layout real clients use. The same rules apply to an
 * MQTT 5 Response Topic property (C2).
 */
export function resolveReplyTopic(
  base: string,
  sessionId: string,
  requested: unknown,
  /** What the requested topic is called in the warning. */
  label = "replyTopic",
): ResolvedReplyTopic {
  const fallback = `${base}/${sessionId}`.replace(/\/+$/, "");
  if (requested === undefined || requested === null) return { topic: fallback };
  const reason = rejectionReason(base, sessionId, requested);
  if (reason === undefined) return { topic: (requested as string).trim().replace(/\/+$/, "") };
  return {
    topic: fallback,
    warning: `ignored ${label} ${describe(requested)}: ${reason}; using ${fallback}`,
  };
}

function rejectionReason(base: string, sessionId: string, requested: unknown): string | undefined {
  if (typeof requested !== "string") return "it is not a string";
  const candidate = requested.trim().replace(/\/+$/, "");
  if (candidate === "") return "it is empty";
  if (candidate.includes("+") || candidate.includes("#")) return "it contains an MQTT wildcard";
  if (INVALID_TOPIC_CHARS.test(candidate)) return "it contains control characters or noncharacters";
  if (Buffer.byteLength(candidate, "utf8") > MAX_TOPIC_BYTES) return "it is too long";
  const prefix = `${base}/`;
  // Trailing `/` is already gone, so a matching prefix always leaves a non-empty remainder.
  if (!candidate.startsWith(prefix)) return `it must start with ${prefix}<sessionId>`;
  const firstLevel = candidate.slice(prefix.length).split("/", 1)[0];
  if (firstLevel !== sessionId) return `its session level does not match sessionId ${sessionId}`;
  return undefined;
}

function describe(requested: unknown): string {
  if (typeof requested !== "string") return `(${Array.isArray(requested) ? "array" : typeof requested})`;
  return JSON.stringify(requested.length > 200 ? `${requested.slice(0, 200)}…` : requested);
}
