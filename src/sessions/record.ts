import type { ChatMessage } from "../backends/types.js";
import type { MazeCounters, SessionKey, SessionRecord, StoredSession } from "./types.js";

/** One string per session, for maps and locks; NUL cannot occur in an MQTT topic level. */
export function sessionKeyString(key: SessionKey): string {
  return `${key.project}\u0000${key.sessionId}`;
}

export function freshMazeCounters(): MazeCounters {
  return { stateRepeatCount: 0, assistantRepeatCount: 0 };
}

export function newSessionRecord(key: SessionKey, systemPrompt: string, now: number): SessionRecord {
  return {
    project: key.project,
    sessionId: key.sessionId,
    systemPrompt,
    history: [],
    maze: freshMazeCounters(),
    generation: 0,
    createdAt: now,
    lastActiveAt: now,
  };
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
