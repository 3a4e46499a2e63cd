import { LlmqttError } from "./errors.js";
import { INVALID_TOPIC_CHARS, topicSafeSessionId } from "./wire.js";

/** Names on the wire as a client builds them (PROTOCOL A1, A4, B10). */

/** Refused rather than published: a wildcard or empty level would make every topic invalid. */
export function checkProject(name: string): string {
  const project = name.trim();
  const bad = /[+#]/.test(project) || INVALID_TOPIC_CHARS.test(project);
  if (project === "" || bad || project.startsWith("/") || project.endsWith("/")) {
    const reason = `invalid project name "${name}": it must be a topic prefix without + or #`;
    throw new LlmqttError("invalid_request", reason);
  }
  return project;
}

/** `prefix` plus random hex, from the Web Crypto API that browsers and Node share. */
export function randomId(prefix: string, bytes: number): string {
  const random = globalThis.crypto.getRandomValues(new Uint8Array(bytes));
  return prefix + Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The id the gateway will use too (B10); a blank id picks a fresh one. */
export function safeSession(id: string | undefined, prefix = "chat-"): string {
  const trimmed = id?.trim() ?? "";
  return trimmed === "" ? randomId(prefix, 3) : topicSafeSessionId(trimmed);
}

/** Where a request goes and where its replies come back (A1, A3, A4). */
export interface RequestTopics {
  input: string;
  /** `<base>/<sid>/<clientId>`: each request adds `/<requestId>`; the client subscribes to `/#`. */
  replyPrefix: string;
}

export type RequestKind = "chat" | "state";

/** Chat turns go to `P/user_input` and come back on `P/assistant_response/...`; game states (the
 * maze's `maze/state`) on `P/state` and `P/hint/...`. */
export function requestTopics(
  kind: RequestKind,
  project: string,
  sessionId: string,
  clientId: string,
): RequestTopics {
  const [input, base] =
    kind === "chat"
      ? [`${project}/user_input`, `${project}/assistant_response`]
      : [`${project}/state`, `${project}/hint`];
  return { input, replyPrefix: `${base}/${sessionId}/${clientId}` };
}

/** The request a reply topic (or its `/stream`) answers: the last level of the reply topic. */
export function requestIdOfTopic(topic: string): { requestId: string; stream: boolean } {
  const levels = topic.split("/");
  const stream = levels.at(-1) === "stream";
  return { requestId: levels.at(stream ? -2 : -1) ?? "", stream };
}
