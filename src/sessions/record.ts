import type { ChatMessage } from "../backends/types.js";
import type { ProjectState } from "../projects/hooks.js";
import type { SessionKey, SessionRecord, StoredSession } from "./types.js";

/** One string per session, for maps and locks; NUL cannot occur in an MQTT topic level. */
export function sessionKeyString(key: SessionKey): string {
  return `${key.project}\u0000${key.sessionId}`;
}

/** The project state of a new or cleared session; stored records are never changed in place. */
export const NO_PROJECT_STATE: ProjectState = Object.freeze({});

export function newSessionRecord(key: SessionKey, systemPrompt: string, now: number): StoredSession {
  return {
    project: key.project,
    sessionId: key.sessionId,
    systemPrompt,
    history: [],
    projectState: NO_PROJECT_STATE,
    generation: 0,
    createdAt: now,
    lastActiveAt: now,
  };
}

/** What a change to a session may replace; its identity and creation time stay. */
export type RecordChange = Partial<
  Pick<StoredSession, "systemPrompt" | "history" | "projectState" | "generation" | "lastActiveAt">
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
  return {
    ...record,
    history: record.history.map(copyMessage),
    projectState: structuredClone(record.projectState),
  };
}

/**
 * A record from its stored JSON (SQLite, Redis). Records written before project state was opaque
 * hold the maze's counters as `maze`: they become the project state, as the maze hooks read it.
 */
export function parseStoredRecord(json: string): StoredSession {
  const { maze, ...record } = JSON.parse(json) as StoredSession & { maze?: ProjectState };
  return { ...record, projectState: record.projectState ?? maze ?? NO_PROJECT_STATE };
}
