import { resolve } from "node:path";
import type { SessionSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import { redactUrl } from "../observability/redact.js";
import { MemorySessionStore } from "./memoryStore.js";
import { RedisSessionStore } from "./redisStore.js";
import { SqliteSessionStore } from "./sqliteStore.js";
import type { SessionStore } from "./types.js";

/** The store `sessions.store` names; it opens its file or connection on start(). */
export function createSessionStore(settings: SessionSettings, logger: Logger): SessionStore {
  const limits = { maxSessions: settings.maxSessions, idleTimeoutSec: settings.idleTimeoutSec };
  switch (settings.store) {
    case "memory":
      return new MemorySessionStore(limits);
    case "sqlite":
      return new SqliteSessionStore({ ...limits, path: settings.sqlitePath });
    case "redis":
      return new RedisSessionStore({ ...limits, redis: settings.redis, logger });
  }
}

/** Log fields saying where conversations are kept, with no secret in them. */
export function describeSessionStore(settings: SessionSettings): Record<string, string> {
  switch (settings.store) {
    case "memory":
      return { sessionStore: "memory", note: "sessions are lost on restart" };
    case "sqlite":
      return { sessionStore: "sqlite", path: resolve(settings.sqlitePath) };
    case "redis":
      return {
        sessionStore: "redis",
        url: redactUrl(settings.redis.url),
        keyPrefix: settings.redis.keyPrefix,
      };
  }
}
