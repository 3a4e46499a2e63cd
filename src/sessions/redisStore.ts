import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger.js";
import { redactUrl } from "../observability/redact.js";
import { KeyedLock } from "./keyedLock.js";
import { parseStoredRecord, sessionKeyString } from "./record.js";
import { connectRedis, type RedisSettings } from "./redisConnection.js";
import { SessionScripts } from "./redisScripts.js";
import {
  SessionStoreUnavailable,
  DELETE_SESSION,
  type SessionChange,
  type SessionKey,
  type SessionStore,
  type StoredSession,
} from "./types.js";

export interface RedisSessionStoreOptions {
  redis: RedisSettings;
  maxSessions: number;
  idleTimeoutSec: number;
  logger: Logger;
}

interface Connection {
  redis: Redis;
  scripts: SessionScripts;
}

/** Write attempts of one update before giving up when other instances keep changing the session. */
const MAX_ATTEMPTS = 50;

/**
 * Sessions in Redis, shared by every gateway instance using the same Redis and key prefix (see
 * redisScripts.ts for the layout). Redis expires idle sessions itself. An update reads the session
 * with its revision, applies the change here, and writes only if the revision is unchanged
 * (compare-and-set in a script), else reads again; updates within this process queue per session,
 * so only other processes can cause a retry.
 */
export class RedisSessionStore implements SessionStore {
  private connection?: Connection;
  private readonly lock = new KeyedLock();
  private readonly shownUrl: string;

  constructor(private readonly options: RedisSessionStoreOptions) {
    this.shownUrl = redactUrl(options.redis.url);
  }

  async start(): Promise<void> {
    if (this.connection) return;
    const redis = await connectRedis(this.options.redis, this.options.logger, "llmqtt-sessions");
    const scripts = new SessionScripts(redis, {
      keyPrefix: this.options.redis.keyPrefix,
      idleMs: Math.round(this.options.idleTimeoutSec * 1000),
      maxSessions: this.options.maxSessions,
    });
    this.connection = { redis, scripts };
  }

  async stop(): Promise<void> {
    const redis = this.connection?.redis;
    this.connection = undefined;
    await redis?.quit().catch(() => redis.disconnect());
  }

  update(key: SessionKey, change: SessionChange): Promise<StoredSession | undefined> {
    return this.lock.run(sessionKeyString(key), async () => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const { record, revision } = await this.call(({ scripts }) => scripts.read(key));
        const current = record === null ? undefined : parseStoredRecord(record);
        const next = change(current);
        if (next === undefined) return current;
        const stored = next === DELETE_SESSION ? null : JSON.stringify(next);
        if (await this.call(({ scripts }) => scripts.write(key, revision, stored))) {
          return next === DELETE_SESSION ? undefined : next;
        }
        // Another instance wrote first; a random pause keeps two busy instances from colliding in step.
        await sleep(Math.random() * attempt);
      }
      throw new Error(
        `session ${key.sessionId} of project ${key.project} kept being changed by other instances (${MAX_ATTEMPTS} attempts)`,
      );
    });
  }

  async peek(key: SessionKey): Promise<StoredSession | undefined> {
    const record = await this.call(({ scripts }) => scripts.peek(key));
    return record === null ? undefined : (JSON.parse(record) as StoredSession);
  }

  list(project: string): Promise<string[]> {
    return this.call(({ scripts }) => scripts.list(project));
  }

  size(): Promise<number> {
    return this.call(({ scripts }) => scripts.size());
  }

  async getProjectPrompt(project: string): Promise<string | undefined> {
    return (await this.call(({ redis, scripts }) => redis.hget(scripts.promptsKey, project))) ?? undefined;
  }

  async setProjectPrompt(project: string, prompt: string): Promise<void> {
    await this.call(({ redis, scripts }) => redis.hset(scripts.promptsKey, project, prompt));
  }

  /** Runs a Redis operation; a failure names the store and the (redacted) URL. */
  private async call<T>(operation: (connection: Connection) => Promise<T>): Promise<T> {
    if (!this.connection) throw new Error("the Redis session store is not started");
    try {
      return await operation(this.connection);
    } catch (error) {
      throw new SessionStoreUnavailable(
        `session store: Redis at ${this.shownUrl} failed: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
}
