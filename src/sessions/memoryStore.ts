import {
  DELETE_SESSION,
  type SessionChange,
  type SessionKey,
  type SessionStore,
  type StoredSession,
} from "./types.js";

export type EvictionReason = "lru" | "idle";

export interface MemorySessionStoreOptions {
  maxSessions: number;
  idleTimeoutSec: number;
  now?: () => number;
  /** How often the background sweep drops idle sessions; default min(idle timeout, 60 s). */
  sweepIntervalMs?: number;
  onEvict?: (key: SessionKey, reason: EvictionReason) => void;
}

interface Entry {
  /** Shared with callers, never changed in place: an update replaces it. */
  record: StoredSession;
  /** Last update (reads are updates that change nothing), by the store's clock: idle expiry. */
  usedAt: number;
  /** Order of that update among all projects' sessions: which one the session limit drops. */
  use: number;
}

/**
 * Sessions in process memory, bounded by count (LRU) and by idleness; lost on restart. Each
 * project's sessions are a Map by session id whose insertion order is their order of use: every
 * use deletes and re-inserts, so a project's least recently used session is always first. A map
 * per project rather than one keyed by project and id: no key string is built per update or kept
 * per session, and listing a project needs no index of its own. Records are shared, not copied:
 * StoredSession is read-only.
 */
export class MemorySessionStore implements SessionStore {
  private readonly projects = new Map<string, Map<string, Entry>>();
  private readonly projectPrompts = new Map<string, string>();
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private readonly sweepIntervalMs: number;
  private readonly now: () => number;
  private readonly onEvict?: (key: SessionKey, reason: EvictionReason) => void;
  private sweepTimer?: NodeJS.Timeout;
  private count = 0;
  private uses = 0;

  constructor(options: MemorySessionStoreOptions) {
    this.maxSessions = options.maxSessions;
    this.idleMs = options.idleTimeoutSec * 1000;
    this.sweepIntervalMs = options.sweepIntervalMs ?? Math.min(this.idleMs, 60_000);
    this.now = options.now ?? Date.now;
    this.onEvict = options.onEvict;
  }

  async start(): Promise<void> {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Synchronous inside, hence atomic: nothing else runs between the read and the write. */
  async update(key: SessionKey, change: SessionChange): Promise<StoredSession | undefined> {
    const { project, sessionId } = key;
    const sessions = this.projects.get(project);
    const now = this.now();
    const entry = sessions && this.liveEntry(sessions, sessionId, now);
    const next = change(entry?.record);
    if (next === undefined) return entry?.record;
    if (next === DELETE_SESSION) {
      if (entry) this.remove(sessions!, sessionId);
      return undefined;
    }
    if (entry) {
      entry.record = next;
      return next;
    }
    this.touch(sessions ?? this.newProject(project), sessionId, { record: next, usedAt: now, use: 0 }, now);
    this.count++;
    while (this.count > this.maxSessions && this.evictLeastRecentlyUsed());
    return next;
  }

  async peek(key: SessionKey): Promise<StoredSession | undefined> {
    const entry = this.projects.get(key.project)?.get(key.sessionId);
    return entry && !this.isIdle(entry, this.now()) ? entry.record : undefined;
  }

  async list(project: string): Promise<string[]> {
    const sessions = this.projects.get(project);
    if (!sessions) return [];
    const now = this.now();
    const ids: string[] = [];
    for (const [sessionId, entry] of sessions) {
      if (this.isIdle(entry, now)) this.evict(sessions, sessionId, entry, "idle");
      else ids.push(sessionId);
    }
    return ids;
  }

  async size(): Promise<number> {
    return this.count;
  }

  async getProjectPrompt(project: string): Promise<string | undefined> {
    return this.projectPrompts.get(project);
  }

  async setProjectPrompt(project: string, prompt: string): Promise<void> {
    this.projectPrompts.set(project, prompt);
  }

  /** Drops idle sessions; returns how many. Runs on the timer, callable directly. */
  sweep(): number {
    const now = this.now();
    let dropped = 0;
    for (const sessions of this.projects.values()) {
      // Oldest-used first, so the first session still in use ends the project's sweep.
      for (const [sessionId, entry] of sessions) {
        if (!this.isIdle(entry, now)) break;
        this.evict(sessions, sessionId, entry, "idle");
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * A map for the first session of a project. It stays when its sessions are gone: only turns and
   * templates of the configured projects create sessions, and those few come back.
   */
  private newProject(project: string): Map<string, Entry> {
    const sessions = new Map<string, Entry>();
    this.projects.set(project, sessions);
    return sessions;
  }

  /** The entry, touched, unless missing or idle (then it is evicted). */
  private liveEntry(sessions: Map<string, Entry>, sessionId: string, now: number): Entry | undefined {
    const entry = sessions.get(sessionId);
    if (!entry) return undefined;
    if (this.isIdle(entry, now)) {
      this.evict(sessions, sessionId, entry, "idle");
      return undefined;
    }
    this.touch(sessions, sessionId, entry, now);
    return entry;
  }

  private isIdle(entry: Entry, now: number): boolean {
    return now - entry.usedAt > this.idleMs;
  }

  private touch(sessions: Map<string, Entry>, sessionId: string, entry: Entry, now: number): void {
    entry.usedAt = now;
    entry.use = ++this.uses;
    sessions.delete(sessionId);
    sessions.set(sessionId, entry);
  }

  /** Over the session limit: the least recently used session of all goes, the first of some project. */
  private evictLeastRecentlyUsed(): boolean {
    let oldest: { sessions: Map<string, Entry>; sessionId: string; entry: Entry } | undefined;
    for (const sessions of this.projects.values()) {
      const first = sessions.entries().next();
      if (first.done) continue;
      const [sessionId, entry] = first.value;
      if (!oldest || entry.use < oldest.entry.use) oldest = { sessions, sessionId, entry };
    }
    if (!oldest) return false;
    this.evict(oldest.sessions, oldest.sessionId, oldest.entry, "lru");
    return true;
  }

  private evict(sessions: Map<string, Entry>, sessionId: string, entry: Entry, reason: EvictionReason): void {
    this.remove(sessions, sessionId);
    this.onEvict?.({ project: entry.record.project, sessionId }, reason);
  }

  private remove(sessions: Map<string, Entry>, sessionId: string): void {
    sessions.delete(sessionId);
    this.count--;
  }
}
