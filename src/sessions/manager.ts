import type { ChatMessage } from "../backends/types.js";
import type { ProjectState } from "../projects/hooks.js";
import { changedRecord, cloneRecord, copyMessage, newSessionRecord, NO_PROJECT_STATE } from "./record.js";
import {
  DELETE_SESSION,
  type SessionKey,
  type SessionRecord,
  type SessionStore,
  type StoredSession,
} from "./types.js";

/**
 * Stored history is cut to this many messages (whole pairs) only as a memory safety net; turns
 * over the prompt budget are dropped when a turn is committed (fitHistory says which).
 */
export const MAX_STORED_MESSAGES = 200;

export interface SessionManagerOptions {
  /** The configured system prompt of a project (preset or config file). */
  defaultPrompt: (project: string) => string;
  now?: () => number;
}

/** A change of a session that exists; undefined leaves it as it is. */
type ExistingChange = (current: StoredSession) => StoredSession | typeof DELETE_SESSION | undefined;

/**
 * The session rules (PROTOCOL A5, A6, B2, B4) over any SessionStore. Every change to one session
 * is one atomic store update, so e.g. a commit and a clear never interleave, not even when several
 * gateway processes share the store.
 */
export class SessionManager {
  private readonly defaultPrompt: (project: string) => string;
  private readonly now: () => number;

  constructor(
    private readonly store: SessionStore,
    options: SessionManagerOptions,
  ) {
    this.defaultPrompt = options.defaultPrompt;
    this.now = options.now ?? Date.now;
  }

  /** The prompt new sessions of the project start with: a global template's (A5), else the configured one. */
  async projectPrompt(project: string): Promise<string> {
    return (await this.store.getProjectPrompt(project)) ?? this.defaultPrompt(project);
  }

  /** Global template (A5): new default for the project, applied to each of its sessions. */
  async setProjectPrompt(project: string, prompt: string, reset: boolean): Promise<number> {
    await this.store.setProjectPrompt(project, prompt);
    return this.changeEach(project, undefined, (record) => withPrompt(record, prompt, reset));
  }

  /**
   * Loads or creates the session for a turn. A turn's own system prompt replaces the session's,
   * history kept (B4). Returns the stored record itself, read-only: no copy of the history per turn.
   */
  async open(key: SessionKey, systemPromptOverride?: string): Promise<StoredSession> {
    const override = (record: StoredSession) =>
      systemPromptOverride === undefined || systemPromptOverride === record.systemPrompt
        ? undefined
        : withPrompt(record, systemPromptOverride, false);
    const existing = await this.store.update(key, (current) => current && override(current));
    if (existing) return existing;
    // Only a new session needs the project prompt: one store round trip less on every other turn.
    const prompt = systemPromptOverride ?? (await this.projectPrompt(key.project));
    const opened = await this.store.update(key, (current) =>
      current ? override(current) : newSessionRecord(key, prompt, this.now()),
    );
    return opened!;
  }

  /**
   * Stores a completed turn (B2): user message and reply together, only if the session still
   * exists at `generation`; a clear or reset since the turn was opened wins and nothing changes.
   * `dropOldest` history messages (whole pairs the turn's prompt left out) go at the same time.
   */
  commitTurn(
    key: SessionKey,
    generation: number,
    user: ChatMessage,
    assistant: ChatMessage,
    projectState?: ProjectState,
    dropOldest = 0,
  ): Promise<boolean> {
    return this.changeExisting(key, (record) =>
      record.generation === generation
        ? changedRecord(record, {
            history: appendTurn(
              dropOldest > 0 ? record.history.slice(dropOldest) : record.history,
              user,
              assistant,
            ),
            projectState: projectState ?? record.projectState,
            lastActiveAt: this.now(),
          })
        : undefined,
    );
  }

  /** Per-session template (A5): creates the session if missing; the project default is untouched (B4). */
  async setSessionPrompt(key: SessionKey, prompt: string, reset: boolean): Promise<void> {
    await this.store.update(key, (current) =>
      withPrompt(current ?? newSessionRecord(key, prompt, this.now()), prompt, reset),
    );
  }

  /** Drops turns and project state, keeps the system prompt (A6). No sessionId = the whole project. */
  clear(project: string, sessionId?: string): Promise<number> {
    return this.changeEach(project, sessionId, resetTurns);
  }

  /** Forgets sessions entirely (A6). No sessionId = every session of the project. */
  delete(project: string, sessionId?: string): Promise<number> {
    return this.changeEach(project, sessionId, () => DELETE_SESSION);
  }

  count(): Promise<number> {
    return this.store.size();
  }

  /** Session ids of one project (for operators: the dashboard and the bridge API). */
  list(project: string): Promise<string[]> {
    return this.store.list(project);
  }

  /** A copy of one session, or undefined; reading counts as use for expiry. */
  async read(key: SessionKey): Promise<SessionRecord | undefined> {
    const record = await this.store.update(key, () => undefined);
    return record && cloneRecord(record);
  }

  /**
   * One session as stored (read-only, not copied), or undefined; reading it does not count as use,
   * so operators browsing conversations keep no session from expiring.
   */
  peek(key: SessionKey): Promise<StoredSession | undefined> {
    return this.store.peek(key);
  }

  /**
   * Applies `change` to each target session; returns how many it changed. With a session id the
   * update starts synchronously, so calls apply in the order they were made.
   */
  private async changeEach(
    project: string,
    sessionId: string | undefined,
    change: ExistingChange,
  ): Promise<number> {
    const ids = sessionId === undefined ? await this.store.list(project) : [sessionId];
    const changed = await Promise.all(
      ids.map((id) => this.changeExisting({ project, sessionId: id }, change)),
    );
    return changed.filter(Boolean).length;
  }

  /** One atomic update of an existing session; true if `change` changed it. */
  private async changeExisting(key: SessionKey, change: ExistingChange): Promise<boolean> {
    let changed = false;
    await this.store.update(key, (current) => {
      const next = current && change(current);
      changed = next !== undefined;
      return next;
    });
    return changed;
  }
}

function withPrompt(record: StoredSession, systemPrompt: string, reset: boolean): StoredSession {
  const prompted = changedRecord(record, { systemPrompt });
  return reset ? resetTurns(prompted) : prompted;
}

/** Starts the session over: a turn opened before this can no longer commit. */
function resetTurns(record: StoredSession): StoredSession {
  return changedRecord(record, {
    history: [],
    projectState: NO_PROJECT_STATE,
    generation: record.generation + 1,
  });
}

/** The history with one more turn; beyond MAX_STORED_MESSAGES the oldest whole pairs go. */
function appendTurn(
  history: StoredSession["history"],
  user: ChatMessage,
  assistant: ChatMessage,
): ChatMessage[] {
  const excess = history.length + 2 - MAX_STORED_MESSAGES;
  const kept = excess > 0 ? history.slice(excess + (excess % 2)) : history;
  return [...kept, copyMessage(user), copyMessage(assistant)];
}
