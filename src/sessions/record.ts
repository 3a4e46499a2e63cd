import type { ChatMessage } from "../backends/types.js";
import type { MazeCounters, SessionKey, SessionRecord, StoredSession } from "./types.js";

/** One string per session, for maps and locks; NUL cannot occur in an MQTT topic level. */
export function sessionKeyString(key: SessionKey): string {
  return `${key.project}\u0000${key.sessionId}`;
}

/**
 * The counters of a session that has seen no maze snapshot. Stored records are never changed in
 * place, so every such session shares this one (frozen) object.
 */
export const NO_MAZE_COUNTERS: Readonly<MazeCounters> = Object.freeze({
  stateRepeatCount: 0,
  assistantRepeatCount: 0,
});

export function newSessionRecord(key: SessionKey, systemPrompt: string, now: number): StoredSession {
  return {
    project: key.project,
    sessionId: key.sessionId,
    systemPrompt,
    history: [],
    maze: NO_MAZE_COUNTERS,
    generation: 0,
    createdAt: now,
    lastActiveAt: now,
  };
}

/** What a change to a session may replace; its identity and creation time stay. */
export type RecordChange = Partial<
  Pick<StoredSession, "systemPrompt" | "history" | "maze" | "generation" | "lastActiveAt">
>;

/** A new record: `record` with `change` applied. */
export function changedRecord(record: StoredSession, change: RecordChange): StoredSession {
  return { ...record, ...change };
}

export function copyMessage(message: Readonly<ChatMessage>): ChatMessage {
  const copy: ChatMessage = { role: message.role, content: message.content };
  if (message.images) copy.images = [...message.images];
  return copy;
}

/** A deep copy, so no caller ever holds an array or object the store keeps. */
export function cloneRecord(record: StoredSession): SessionRecord {
  return { ...record, history: record.history.map(copyMessage), maze: { ...record.maze } };
}
