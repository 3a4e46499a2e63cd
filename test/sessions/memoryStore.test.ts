import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MemorySessionStore, type EvictionReason } from "../../src/sessions/memoryStore.js";
import { newSessionRecord } from "../../src/sessions/record.js";
import type { SessionKey } from "../../src/sessions/types.js";

/** What only the memory store does: its own clock, eviction callbacks, a sweep on a timer. */
function setup(options: { maxSessions?: number; idleTimeoutSec?: number; sweepIntervalMs?: number } = {}) {
  const clock = { now: 0 };
  const evicted: string[] = [];
  const store = new MemorySessionStore({
    maxSessions: options.maxSessions ?? 100,
    idleTimeoutSec: options.idleTimeoutSec ?? 60,
    sweepIntervalMs: options.sweepIntervalMs,
    now: () => clock.now,
    onEvict: (key: SessionKey, reason: EvictionReason) => evicted.push(`${key.sessionId}:${reason}`),
  });
  const create = (sessionId: string) =>
    store.update({ project: "p", sessionId }, (current) =>
      current ? undefined : newSessionRecord({ project: "p", sessionId }, "prompt", clock.now),
    );
  const read = (sessionId: string) => store.update({ project: "p", sessionId }, () => undefined);
  return { store, clock, evicted, create, read };
}

describe("MemorySessionStore", () => {
  test("reports evictions with their reason; exactly at the timeout a session is still alive", async () => {
    const { clock, evicted, create, read } = setup({ maxSessions: 2, idleTimeoutSec: 10 });
    await create("a");
    await create("b");
    await create("c");
    assert.deepEqual(evicted, ["a:lru"]);
    clock.now = 10_000;
    assert.ok(await read("b"));
    clock.now = 20_001;
    assert.equal(await read("b"), undefined);
    assert.deepEqual(evicted, ["a:lru", "b:idle"]);
  });

  test("sweep drops only idle sessions", async () => {
    const { store, clock, evicted, create, read } = setup({ idleTimeoutSec: 10 });
    await create("old");
    await create("used");
    clock.now = 5_000;
    await create("new");
    await read("used");
    clock.now = 12_000;
    assert.equal(store.sweep(), 1);
    assert.deepEqual(evicted, ["old:idle"]);
    assert.deepEqual((await store.list("p")).sort(), ["new", "used"]);
  });

  test("start() sweeps on an unref'ed timer; stop() ends it", async (t) => {
    t.mock.timers.enable({ apis: ["setInterval"] });
    const { store, clock, evicted, create } = setup({ idleTimeoutSec: 10, sweepIntervalMs: 1000 });
    await store.start();
    await create("a");
    clock.now = 10_001;
    t.mock.timers.tick(1000);
    assert.deepEqual(evicted, ["a:idle"]);
    await store.stop();
    await create("b");
    clock.now = 30_000;
    t.mock.timers.tick(5000);
    assert.equal(await store.size(), 1);
  });

  test("keeps the record a change returns as it is: no copy per update", async () => {
    const { store } = setup();
    const key = { project: "p", sessionId: "a" };
    const record = newSessionRecord(key, "prompt", 0);
    assert.equal(await store.update(key, () => record), record);
    assert.equal(await store.update(key, () => undefined), record);
  });
});
