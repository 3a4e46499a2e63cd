import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { newSessionRecord } from "../../src/sessions/record.js";
import {
  DELETE_SESSION,
  type SessionKey,
  type SessionStore,
  type StoredSession,
} from "../../src/sessions/types.js";
import { STORE_KINDS, type StoreFactory } from "./storeKinds.js";

const key = (sessionId: string, project = "maze"): SessionKey => ({ project, sessionId });
const create = (store: SessionStore, k: SessionKey) =>
  store.update(k, (current) => current ?? newSessionRecord(k, "prompt", 1000));
const read = (store: SessionStore, k: SessionKey) => store.update(k, () => undefined);
const appendUser = (content: string) => (current: StoredSession | undefined) =>
  current && { ...current, history: [...current.history, { role: "user" as const, content }] };
const sorted = async (ids: Promise<string[]>) => (await ids).sort();

for (const kind of STORE_KINDS) {
  describe(`${kind.name} session store`, { skip: kind.skip }, () => {
    let stores: StoreFactory;
    before(async () => (stores = await kind.setUp()));
    after(() => stores.close());

    test("update creates, changes, reads and deletes a session, and says how it is afterwards", async () => {
      const store = await stores.open();
      assert.equal(await read(store, key("a")), undefined, "a read does not create");
      const created = await create(store, key("a"));
      assert.equal(created?.systemPrompt, "prompt");
      const record: StoredSession = {
        ...newSessionRecord(key("a"), "changed", 1000),
        history: [
          { role: "user", content: 'q ✓ \u0000 "quoted"' },
          { role: "assistant", content: "a" },
        ],
        projectState: { lastState: "{}", stateRepeatCount: 2, assistantRepeatCount: 1, lastReply: "go" },
        generation: 3,
        lastActiveAt: 2000,
      };
      assert.deepEqual(await store.update(key("a"), () => record), record);
      assert.deepEqual(await read(store, key("a")), record);
      assert.deepEqual(await store.update(key("a"), () => DELETE_SESSION), undefined);
      assert.equal(await read(store, key("a")), undefined);
      assert.equal(await store.size(), 0);
      assert.equal(await store.update(key("missing"), () => DELETE_SESSION), undefined);
    });

    test("lists the sessions of one project and counts all", async () => {
      const store = await stores.open();
      for (const k of [key("a"), key("b"), key("a", "racing"), key("x:%3A/y", "my:project%")])
        await create(store, k);
      assert.deepEqual(await sorted(store.list("maze")), ["a", "b"]);
      assert.deepEqual(await store.list("racing"), ["a"]);
      assert.deepEqual(await store.list("my:project%"), ["x:%3A/y"], "names are kept exactly");
      assert.deepEqual(await store.list("none"), []);
      assert.equal(await store.size(), 4);
      await store.update(key("a"), () => DELETE_SESSION);
      assert.deepEqual(await store.list("maze"), ["b"]);
      assert.equal(await store.size(), 3);
    });

    test("a session idle longer than the timeout is gone; a read counts as use", async () => {
      const store = await stores.open({ idleTimeoutSec: 1 });
      await create(store, key("read"));
      await create(store, key("idle"));
      await sleep(600);
      assert.ok(await read(store, key("read")));
      await sleep(700);
      assert.deepEqual(await store.list("maze"), ["read"]);
      assert.equal(await store.size(), 1);
      assert.equal(await read(store, key("idle")), undefined);
      assert.equal((await create(store, key("idle")))?.generation, 0, "a new session takes its place");
    });

    test("beyond maxSessions the least recently used session goes", async () => {
      const store = await stores.open({ maxSessions: 3 });
      for (const id of ["a", "b", "c"]) await create(store, key(id));
      await read(store, key("a"));
      await create(store, key("d"));
      assert.deepEqual(await sorted(store.list("maze")), ["a", "c", "d"]);
      await store.update(key("c"), appendUser("changing counts as use and does not grow the store"));
      await create(store, key("e", "racing"));
      assert.deepEqual(await sorted(store.list("maze")), ["c", "d"]);
      assert.deepEqual(await store.list("racing"), ["e"]);
      assert.equal(await store.size(), 3);
    });

    test("peek reads a session without counting as use: no new lease on life, no LRU move", async () => {
      const store = await stores.open({ maxSessions: 2, idleTimeoutSec: 1 });
      assert.equal(await store.peek(key("a")), undefined, "a peek does not create");
      await create(store, key("a"));
      await create(store, key("b"));
      assert.equal((await store.peek(key("a")))?.systemPrompt, "prompt");
      await create(store, key("c"));
      assert.equal(await store.peek(key("a")), undefined, "peeked, still the least recently used");
      await sleep(600);
      assert.ok(await store.peek(key("b")));
      await sleep(700);
      assert.equal(await store.peek(key("b")), undefined, "peeking did not keep it from going idle");
    });

    test("project prompts are kept per project and never expire", async () => {
      const store = await stores.open({ idleTimeoutSec: 0.2 });
      assert.equal(await store.getProjectPrompt("maze"), undefined);
      await store.setProjectPrompt("maze", "first");
      await store.setProjectPrompt("maze", "second");
      await store.setProjectPrompt("racing", "other");
      await sleep(300);
      assert.equal(await store.getProjectPrompt("maze"), "second");
      assert.equal(await store.getProjectPrompt("racing"), "other");
      const twin = await stores.twin(store);
      assert.equal(await twin.getProjectPrompt("maze"), "second");
    });

    test("updates of one session apply in the order they were called", async () => {
      const store = await stores.open();
      await create(store, key("a"));
      await Promise.all(["1", "2", "3"].map((n) => store.update(key("a"), appendUser(n))));
      assert.deepEqual(
        (await read(store, key("a")))?.history.map((m) => m.content),
        ["1", "2", "3"],
      );
    });

    test("200 concurrent updates through two store instances: none is lost", async () => {
      const store = await stores.open();
      const twin = await stores.twin(store);
      await create(store, key("shared"));
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? twin : store).update(key("shared"), appendUser(`m${i}`)),
        ),
      );
      const contents = (await read(store, key("shared")))!.history.map((m) => m.content);
      assert.equal(contents.length, 200);
      assert.deepEqual(new Set(contents), new Set(Array.from({ length: 200 }, (_, i) => `m${i}`)));
    });
  });
}
