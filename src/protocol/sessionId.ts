import { randomBytes } from "node:crypto";

import { scalarText } from "./coerce.js";

export { MAX_SESSION_ID_LENGTH, topicSafeSessionId } from "../client/wire.js";

/** The id a turn gets when the client names no session: it lives for that one message. */
export function newDefaultSessionId(): string {
  return `default-${randomBytes(4).toString("hex")}`;
}

export type SessionIdResult =
  /** `sessionId` undefined: the client named no session (missing, null or blank). */
  { ok: true; sessionId: string | undefined } | { ok: false; reason: string };

/**
 * A client-supplied session id as the original read it: strings trimmed, numbers and booleans
 * through Python's str(). Objects and arrays are refused rather than stringified, because
 * `{'a': 1}`-style ids were never a deliberate choice of any client.
 */
export function toSessionId(value: unknown): SessionIdResult {
  if (value === undefined || value === null) return { ok: true, sessionId: undefined };
  const text = scalarText(value);
  if (text === undefined) return { ok: false, reason: "sessionId must be a string or a number" };
  const trimmed = text.trim();
  return { ok: true, sessionId: trimmed === "" ? undefined : trimmed };
}
