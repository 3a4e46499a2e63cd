import type { ChatMessage } from "../backends/types.js";
import type { ProjectState } from "../projects/hooks.js";

export interface SessionKey {
  project: string;
  sessionId: string;
}

export interface SessionRecord extends SessionKey {
  systemPrompt: string;
  /** Completed turns, oldest first: user, assistant, user, assistant, ... */
  history: ChatMessage[];
  /** What the project's hooks keep per session (projects/hooks.ts); opaque here. */
  projectState: ProjectState;
  /**
   * Bumped by every clear, reset and prompt change that drops history. A turn read at one
   * generation commits only if the session is still at it, so a clear that lands while a turn is
   * in flight is never undone by that turn's commit.
   */
  generation: number;
  createdAt: number;
  lastActiveAt: number;
}

/**
 * A session as a store hands it out. Read-only because the memory store shares it rather than
 * copying it on every turn: a change builds a new record, which may share the unchanged parts.
 */
export type StoredSession = Readonly<Omit<SessionRecord, "history">> & {
  readonly history: readonly Readonly<ChatMessage>[];
};

/** The store could not be reached (e.g. Redis down); the same request may succeed later. */
export class SessionStoreUnavailable extends Error {
  override name = "SessionStoreUnavailable";
}

/** Returned by a SessionChange to delete the session. */
export const DELETE_SESSION = Symbol("delete session");

/**
 * Decides a session's next state from its current one (undefined: none, or idle too long):
 * a record to store, DELETE_SESSION, or undefined to leave it as it is. It may run more than once
 * (a store retries it when another process changed the session meanwhile), so it must not have
 * effects other than its result and what it notes about the last run.
 */
export type SessionChange = (
  current: StoredSession | undefined,
) => StoredSession | typeof DELETE_SESSION | undefined;

/**
 * Where sessions and project prompts live. The store only stores; rules (prompts, trimming,
 * commits) live in the session manager. Every read or change of a session counts as its use for
 * idle expiry and least-recently-used eviction.
 */
export interface SessionStore {
  /**
   * Applies `change` to one session atomically, also against other processes sharing the store;
   * resolves with the session as it is afterwards (a change returning undefined makes it a read).
   * Updates of one session made by one process apply in the order they were called.
   */
  update(key: SessionKey, change: SessionChange): Promise<StoredSession | undefined>;
  /**
   * The session as it is, without counting as a use: operators browsing conversations must not
   * keep sessions from expiring or change which one is evicted next.
   */
  peek(key: SessionKey): Promise<StoredSession | undefined>;
  /** Session ids of one project. */
  list(project: string): Promise<string[]>;
  /** Number of sessions held, all projects. */
  size(): Promise<number>;
  /** A project prompt set at run time by a global template (PROTOCOL A5); they never expire. */
  getProjectPrompt(project: string): Promise<string | undefined>;
  setProjectPrompt(project: string, prompt: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}
