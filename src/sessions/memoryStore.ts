import { sessionKeyString } from "./record.js";
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
  /** Last update (reads are updates that change nothing), by the store's clock; drives both LRU order and idle expiry. */
  usedAt: number;
}

/**
 * Sessions in process memory, bounded by count (LRU) and by idleness; lost on restart. The Map's
 * insertion order is the LRU order: every use deletes and re-inserts, so the oldest-used entry is
 * always first. Records are shared, not copied: StoredSession is read-only.
 */
export class MemorySessionStore implements SessionStore {
  private readonly entries = new Map<string, Entry>();
  /** Session ids per project, so listing a project never scans the others. */
  private readonly byProject = new Map<string, Set<string>>();
  private readonly projectPrompts = new Map<string, string>();
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private readonly sweepIntervalMs: number;
  private readonly now: () => number;
  private readonly onEvict?: (key: SessionKey, reason: EvictionReason) => void;
  private sweepTimer?: NodeJS.Timeout;

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
    const id = sessionKeyString(key);
    const now = this.now();
    const entry = this.liveEntry(id, now);
    const next = change(entry?.record);
    if (next === undefined) return entry?.record;
    if (next === DELETE_SESSION) {
      if (entry) this.remove(id, entry);
      return undefined;
    }
    if (entry) {
      entry.record = next;
      return next;
    }
    this.touch(id, { record: next, usedAt: now }, now);
    let sessions = this.byProject.get(key.project);
    if (!sessions) this.byProject.set(key.project, (sessions = new Set()));
    sessions.add(key.sessionId);
    while (this.entries.size > this.maxSessions) {
      const [oldestId, oldest] = this.entries.entries().next().value!;
      this.evict(oldestId, oldest, "lru");
    }
    return next;
  }

  async list(project: string): Promise<string[]> {
    const now = this.now();
    const ids: string[] = [];
    for (const sessionId of this.byProject.get(project) ?? []) {
      const id = sessionKeyString({ project, sessionId });
      const entry = this.entries.get(id)!;
      if (this.isIdle(entry, now)) this.evict(id, entry, "idle");
      else ids.push(sessionId);
    }
    return ids;
  }

  async size(): Promise<number> {
    return this.entries.size;
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
    // Oldest-used first, so the first entry still in use ends the sweep.
    for (const [id, entry] of this.entries) {
      if (!this.isIdle(entry, now)) break;
      this.evict(id, entry, "idle");
      dropped++;
    }
    return dropped;
  }

  /** The entry, touched, unless missing or idle (then it is evicted). */
  private liveEntry(id: string, now: number): Entry | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (this.isIdle(entry, now)) {
      this.evict(id, entry, "idle");
      return undefined;
    }
    this.touch(id, entry, now);
    return entry;
  }

  private isIdle(entry: Entry, now: number): boolean {
    return now - entry.usedAt > this.idleMs;
  }

  private touch(id: string, entry: Entry, now: number): void {
    entry.usedAt = now;
    this.entries.delete(id);
    this.entries.set(id, entry);
  }

  private evict(id: string, entry: Entry, reason: EvictionReason): void {
    this.remove(id, entry);
    this.onEvict?.({ project: entry.record.project, sessionId: entry.record.sessionId }, reason);
  }

  private remove(id: string, entry: Entry): void {
    this.entries.delete(id);
    const { project, sessionId } = entry.record;
    const sessions = this.byProject.get(project);
    sessions?.delete(sessionId);
    if (sessions?.size === 0) this.byProject.delete(project);
  }
}
