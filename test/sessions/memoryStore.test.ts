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
  const create = (sessionId: string, project = "p") =>
    store.update({ project, sessionId }, (current) =>
      current ? undefined : newSessionRecord({ project, sessionId }, "prompt", clock.now),
    );
  const read = (sessionId: string, project = "p") => store.update({ project, sessionId }, () => undefined);
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

  test("the session limit drops the least recently used of all projects, even within one clock tick", async () => {
    const { store, evicted, create, read } = setup({ maxSessions: 3 });
    await create("a", "p");
    await create("b", "q");
    await create("c", "p");
    await read("a", "p");
    await create("d", "r");
    assert.deepEqual(evicted, ["b:lru"]);
    await read("c", "p");
    await create("e", "q");
    assert.deepEqual(evicted, ["b:lru", "a:lru"]);
    assert.deepEqual(await store.list("p"), ["c"]);
    assert.deepEqual(await store.list("q"), ["e"]);
    assert.deepEqual(await store.list("r"), ["d"]);
    assert.equal(await store.size(), 3);
  });

  test("sweep drops only idle sessions", async () => {
    const { store, clock, evicted, create, read } = setup({ idleTimeoutSec: 10 });
    await create("old");
    await create("used");
    await create("other", "q");
    clock.now = 5_000;
    await create("new");
    await read("used");
    clock.now = 12_000;
    assert.equal(store.sweep(), 2);
    assert.deepEqual(evicted, ["old:idle", "other:idle"]);
    assert.deepEqual((await store.list("p")).sort(), ["new", "used"]);
    assert.deepEqual(await store.list("q"), []);
    assert.equal(await store.size(), 2);
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
