import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createLogger } from "../../src/observability/logger.js";
import { newSessionRecord } from "../../src/sessions/record.js";
import { RedisSessionStore } from "../../src/sessions/redisStore.js";
import type { SessionKey, SessionStore } from "../../src/sessions/types.js";
import { freePort } from "../support/brokers.js";
import { redisAvailable, startRedis, type TestRedis } from "../support/redis.js";

const skip = redisAvailable() || process.env.CI === "true" ? false : "redis-server is not installed";
const logger = createLogger("silent");
const key = { project: "maze", sessionId: "s1" };
const create = (store: SessionStore, k: SessionKey) => store.update(k, () => newSessionRecord(k, "p", 0));

describe("RedisSessionStore", { skip }, () => {
  let server: TestRedis;
  let redis: Redis;
  const stores: SessionStore[] = [];
  const open = async (keyPrefix: string, url = server.url) => {
    const store = new RedisSessionStore({
      redis: { url, keyPrefix },
      maxSessions: 100,
      idleTimeoutSec: 60,
      logger,
    });
    await store.start();
    stores.push(store);
    return store;
  };

  before(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });
  after(async () => {
    for (const store of stores) await store.stop();
    redis.disconnect();
    await server.stop();
  });

  test("writes only under its key prefix; each session expires after the idle timeout, renewed on use", async () => {
    const store = await open("app1:");
    await create(store, key);
    await store.setProjectPrompt("maze", "replaced");
    for (const name of await redis.keys("*")) assert.match(name, /^app1:/);
    const sessionKey = "app1:session:maze:s1";
    await redis.pexpire(sessionKey, 5_000);
    await store.update(key, () => undefined);
    const ttl = await redis.pttl(sessionKey);
    assert.ok(ttl > 59_000 && ttl <= 60_000, `TTL ${ttl} ms`);
  });

  test("deployments with different key prefixes do not see each other", async () => {
    const one = await open("one:");
    const other = await open("other:");
    await create(one, key);
    await one.setProjectPrompt("maze", "one's");
    assert.deepEqual(await other.list("maze"), []);
    assert.equal(await other.size(), 0);
    assert.equal(await other.getProjectPrompt("maze"), undefined);
  });

  test("a session removed behind its back disappears from the project's list", async () => {
    const store = await open("gone:");
    await create(store, key);
    await redis.del("gone:session:maze:s1");
    assert.deepEqual(await store.list("maze"), []);
    assert.deepEqual(await redis.smembers("gone:project:maze"), [], "the index is pruned");
  });

  test("no Redis at start: start() fails naming the URL", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const store = new RedisSessionStore({
      redis: { url, keyPrefix: "x:" },
      maxSessions: 1,
      idleTimeoutSec: 1,
      logger,
    });
    await assert.rejects(store.start(), new RegExp(`cannot connect to Redis at ${url}`));
  });

  test("Redis going away: operations reject with an error naming the store and URL", async () => {
    const doomed = await startRedis();
    const store = await open("down:", doomed.url);
    await create(store, key);
    await doomed.stop();
    const started = Date.now();
    await assert.rejects(
      store.update(key, () => undefined),
      /session store: Redis at redis:\/\/127\.0\.0\.1:\d+ failed/,
    );
    await assert.rejects(store.list("maze"), /session store: Redis at/);
    assert.ok(Date.now() - started < 10_000, "fails in seconds, not never");
  });
});
