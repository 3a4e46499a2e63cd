import type { Redis } from "ioredis";
import type { SessionKey } from "./types.js";

/**
 * How sessions are laid out in Redis, and the Lua scripts that change them atomically.
 *
 * - `<prefix>session:<project>:<session id>`: a hash {record (JSON), revision}, expiring after the
 *   idle timeout; every use sets the expiry again.
 * - `<prefix>project:<project>`: the set of a project's session ids, for listing; ids whose
 *   session has expired are pruned when the project is listed.
 * - `<prefix>recent`: every session (`<project>:<session id>`) scored by its last use in µs of the
 *   Redis clock, for the maxSessions cap (oldest evicted) and for counting.
 * - `<prefix>revision`: a counter giving every write a revision no other write ever had, for
 *   compare-and-set.
 *
 * Names in keys escape `%` and `:` so that `:` separates them unambiguously. The scripts build
 * the names of sessions they evict themselves, so this layout needs one Redis, not a cluster.
 * Needs Redis ≥ 5 (ZPOPMIN; scripts replicated by effect, so they may read the clock).
 */

const NOW_US = `local function now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end
`;

/** KEYS session, recent; ARGV idle ms, recent member. */
const READ = `${NOW_US}
local found = redis.call('HMGET', KEYS[1], 'record', 'revision')
if found[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], now_us(), ARGV[2])
end
return found`;

/**
 * KEYS session, project index, recent, revision counter; ARGV expected revision ('' = none),
 * record ('' = delete), idle ms, max sessions, recent member, index member, key prefix.
 */
const WRITE = `${NOW_US}
if (redis.call('HGET', KEYS[1], 'revision') or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[6])
  redis.call('ZREM', KEYS[3], ARGV[5])
  return 1
end
local idle_ms = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'revision', redis.call('INCR', KEYS[4]))
redis.call('PEXPIRE', KEYS[1], idle_ms)
redis.call('SADD', KEYS[2], ARGV[6])
local now = now_us()
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - idle_ms * 1000 - 1)
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], excess)
  for i = 1, #oldest, 2 do
    local member = oldest[i]
    local colon = string.find(member, ':', 1, true)
    redis.call('DEL', ARGV[7] .. 'session:' .. member)
    redis.call('SREM', ARGV[7] .. 'project:' .. string.sub(member, 1, colon - 1), string.sub(member, colon + 1))
  end
end
return 1`;

/** KEYS project index; ARGV the project's session key prefix. */
const LIST = `local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    live[#live + 1] = id
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return live`;

/** KEYS recent; ARGV idle ms. */
const SIZE = `${NOW_US}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us() - tonumber(ARGV[1]) * 1000 - 1)
return redis.call('ZCARD', KEYS[1])`;

type Script = (...args: (string | number)[]) => Promise<unknown>;

export interface SessionScriptOptions {
  keyPrefix: string;
  idleMs: number;
  maxSessions: number;
}

export class SessionScripts {
  readonly promptsKey: string;
  private readonly recentKey: string;
  private readonly revisionKey: string;
  private readonly scripts: Record<"read" | "write" | "list" | "size", Script>;

  constructor(
    private readonly redis: Redis,
    private readonly options: SessionScriptOptions,
  ) {
    const prefix = options.keyPrefix;
    this.promptsKey = `${prefix}prompts`;
    this.recentKey = `${prefix}recent`;
    this.revisionKey = `${prefix}revision`;
    const define = (name: string, numberOfKeys: number, lua: string): Script => {
      // ioredis sends EVALSHA, and the script itself only when Redis does not know it yet.
      redis.defineCommand(`llmqtt_${name}`, { numberOfKeys, lua });
      const commands = redis as unknown as Record<string, Script>;
      return (...args) => commands[`llmqtt_${name}`]!(...args);
    };
    this.scripts = {
      read: define("read", 2, READ),
      write: define("write", 4, WRITE),
      list: define("list", 1, LIST),
      size: define("size", 1, SIZE),
    };
  }

  /** The session's record JSON and revision, or nulls; a read counts as use. */
  async read(key: SessionKey): Promise<{ record: string | null; revision: string | null }> {
    const [record, revision] = (await this.scripts.read(
      this.sessionKey(key),
      this.recentKey,
      this.options.idleMs,
      this.recentMember(key),
    )) as [string | null, string | null];
    return { record, revision };
  }

  /** The session's record JSON, or null; unlike read, not a use (no new expiry, no LRU move). */
  peek(key: SessionKey): Promise<string | null> {
    return this.redis.hget(this.sessionKey(key), "record");
  }

  /**
   * Stores `record` (null deletes the session) only if the session is still at `revision`;
   * false if another write came first.
   */
  async write(key: SessionKey, revision: string | null, record: string | null): Promise<boolean> {
    const written = await this.scripts.write(
      this.sessionKey(key),
      this.projectKey(key.project),
      this.recentKey,
      this.revisionKey,
      revision ?? "",
      record ?? "",
      this.options.idleMs,
      this.options.maxSessions,
      this.recentMember(key),
      escape(key.sessionId),
      this.options.keyPrefix,
    );
    return written === 1;
  }

  async list(project: string): Promise<string[]> {
    const ids = (await this.scripts.list(
      this.projectKey(project),
      `${this.options.keyPrefix}session:${escape(project)}:`,
    )) as string[];
    return ids.map(unescape);
  }

  async size(): Promise<number> {
    return (await this.scripts.size(this.recentKey, this.options.idleMs)) as number;
  }

  private sessionKey(key: SessionKey): string {
    return `${this.options.keyPrefix}session:${this.recentMember(key)}`;
  }

  private projectKey(project: string): string {
    return `${this.options.keyPrefix}project:${escape(project)}`;
  }

  private recentMember(key: SessionKey): string {
    return `${escape(key.project)}:${escape(key.sessionId)}`;
  }
}

function escape(name: string): string {
  return name.replace(/[%:]/g, (c) => (c === "%" ? "%25" : "%3A"));
}

function unescape(name: string): string {
  return name.replace(/%(25|3A)/g, (_, code: string) => (code === "25" ? "%" : ":"));
}
