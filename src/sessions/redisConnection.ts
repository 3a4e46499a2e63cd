import type { Redis } from "ioredis";
import type { SessionSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import { redactUrl } from "../observability/redact.js";

export type RedisSettings = SessionSettings["redis"];

/**
 * One Redis connection from settings, connected before it is returned. While Redis is away
 * commands fail after a short wait instead of queueing forever, so a turn gets an error reply
 * within its deadline; ioredis keeps reconnecting in the background.
 */
export async function connectRedis(settings: RedisSettings, logger: Logger, name: string): Promise<Redis> {
  const log = logger.child({ module: "redis", connection: name });
  const url = redactUrl(settings.url);
  // Loaded by the first Redis-backed feature that starts: gateways without Redis never hold it.
  const { Redis } = await import("ioredis");
  const redis = new Redis(settings.url, {
    username: settings.username,
    password: settings.password,
    connectionName: name,
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  let wasReady = false;
  redis.on("ready", () => {
    log.info({ url }, wasReady ? "Redis connection restored" : "Redis connected");
    wasReady = true;
  });
  redis.on("error", (error: Error) => log.warn({ url, err: error.message }, "Redis error"));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`cannot connect to Redis at ${url}: ${(error as Error).message}`);
  }
  return redis;
}
