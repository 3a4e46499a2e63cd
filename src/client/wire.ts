/**
 * Topic rules both sides of the wire must apply identically: the gateway to accept a reply topic,
 * the client to build one it will accept. They live with the client because the client runs in
 * browsers too, so this module imports nothing.
 */

/**
 * Characters no published topic may contain: control characters, Unicode noncharacters (U+FDD0
 * to U+FDEF, U+FFFE, U+FFFF and their like in every plane) and lone surrogates (not valid UTF-8).
 * Brokers refuse such topics, some by dropping the connection: Mosquitto does for all three.
 */
export const INVALID_TOPIC_CHARS = /\p{Cc}|\p{Noncharacter_Code_Point}|[\ud800-\udfff]/u;

/** Longest session id we put into a topic level (PROTOCOL B10). */
export const MAX_SESSION_ID_LENGTH = 128;

// Wildcards and `/` would change what the reply topic matches.
const UNSAFE = new RegExp(`[+#/]|${INVALID_TOPIC_CHARS.source}`, "gu");

/** A session id that is exactly one valid topic level (PROTOCOL B10). */
export function topicSafeSessionId(sessionId: string): string {
  const safe = sessionId.replace(UNSAFE, "_");
  if (safe.length <= MAX_SESSION_ID_LENGTH) return safe;
  // Cut by code points so a surrogate pair is never split.
  return Array.from(safe).slice(0, MAX_SESSION_ID_LENGTH).join("");
}
