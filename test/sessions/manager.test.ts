import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ChatMessage } from "../../src/backends/types.js";
import { MAX_STORED_MESSAGES, SessionManager } from "../../src/sessions/manager.js";
import type { SessionKey } from "../../src/sessions/types.js";
import { STORE_KINDS, type StoreFactory } from "./storeKinds.js";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

for (const kind of STORE_KINDS) {
  describe(`SessionManager over the ${kind.name} store`, { skip: kind.skip }, () => {
    let stores: StoreFactory;
    before(async () => (stores = await kind.setUp()));
    after(() => stores.close());

    async function setup() {
      const store = await stores.open();
      const manager = new SessionManager(store, {
        defaultPrompt: (project) => `default ${project}`,
        now: () => 42,
      });
      const key = (sessionId: string, project = "maze"): SessionKey => ({ project, sessionId });
      /** Opens a session and commits `turns` turns to it. */
      const withTurns = async (k: SessionKey, turns: number) => {
        for (let i = 0; i < turns; i++) {
          const { generation } = await manager.open(k);
          assert.ok(await manager.commitTurn(k, generation, user(`u${i}`), assistant(`a${i}`)));
        }
      };
      return { store, manager, key, withTurns };
    }

    test("open creates a session with the project default, once", async () => {
      const { manager, key } = await setup();
      const record = await manager.open(key("s1"));
      assert.equal(record.systemPrompt, "default maze");
      assert.deepEqual(record.history, []);
      assert.equal(record.generation, 0);
      assert.equal(record.createdAt, 42);
      await manager.open(key("s1"));
      assert.equal(await manager.count(), 1);
    });

    test("a turn's system prompt replaces the session's and keeps history (B4)", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("s1"), 2);
      const record = await manager.open(key("s1"), "custom");
      assert.equal(record.systemPrompt, "custom");
      assert.equal(record.history.length, 4);
      assert.equal(record.generation, 0);
      assert.equal((await manager.open(key("s1"))).systemPrompt, "custom", "sticks when later turns omit it");
      assert.equal(await manager.projectPrompt("maze"), "default maze");
      assert.equal((await manager.open(key("new"), "custom")).systemPrompt, "custom");
    });

    test("commit stores the pair and the project state together", async () => {
      const { manager, key } = await setup();
      const { generation } = await manager.open(key("s1"));
      const maze = { lastState: "{}", stateRepeatCount: 2, lastReply: "go", assistantRepeatCount: 1 };
      assert.equal(await manager.commitTurn(key("s1"), generation, user("q"), assistant("a"), maze), true);
      const record = await manager.open(key("s1"));
      assert.deepEqual(record.history, [user("q"), assistant("a")]);
      assert.deepEqual(record.projectState, maze);
    });

    test("a clear between open and commit wins: the commit is refused", async () => {
      const { manager, key } = await setup();
      const { generation } = await manager.open(key("s1"));
      assert.equal(await manager.clear("maze", "s1"), 1);
      assert.equal(await manager.commitTurn(key("s1"), generation, user("q"), assistant("a")), false);
      const record = await manager.open(key("s1"));
      assert.deepEqual(record.history, []);
      assert.equal(record.generation, generation + 1);
    });

    test("a commit for a deleted session is refused and does not recreate it", async () => {
      const { manager, key } = await setup();
      const { generation } = await manager.open(key("s1"));
      assert.equal(await manager.delete("maze", "s1"), 1);
      assert.equal(await manager.commitTurn(key("s1"), generation, user("q"), assistant("a")), false);
      assert.equal(await manager.count(), 0);
    });

    test("stored history is capped in whole pairs, newest kept", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("s1"), MAX_STORED_MESSAGES / 2 + 5);
      const { history } = await manager.open(key("s1"));
      assert.equal(history.length, MAX_STORED_MESSAGES);
      assert.equal(history[0]!.role, "user");
      assert.deepEqual(history.at(-1), assistant(`a${MAX_STORED_MESSAGES / 2 + 4}`));
    });

    test("a global prompt with reset replaces every session's prompt and clears history", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 1);
      await withTurns(key("b"), 1);
      await withTurns(key("a", "racing"), 1);
      assert.equal(await manager.setProjectPrompt("maze", "new global", true), 2);
      for (const id of ["a", "b"]) {
        const record = await manager.open(key(id));
        assert.equal(record.systemPrompt, "new global");
        assert.deepEqual(record.history, []);
        assert.equal(record.generation, 1);
      }
      assert.equal((await manager.open(key("c"))).systemPrompt, "new global", "new sessions get it too");
      assert.equal(await manager.projectPrompt("maze"), "new global");
      const other = await manager.open(key("a", "racing"));
      assert.equal(other.systemPrompt, "default racing");
      assert.equal(other.history.length, 2);
    });

    test("a global prompt without reset keeps history and generation", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 1);
      assert.equal(await manager.setProjectPrompt("maze", "new global", false), 1);
      const record = await manager.open(key("a"));
      assert.equal(record.systemPrompt, "new global");
      assert.equal(record.history.length, 2);
      assert.equal(record.generation, 0);
    });

    test("a per-session prompt never changes the project default", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 1);
      await manager.setSessionPrompt(key("a"), "just a", false);
      let record = await manager.open(key("a"));
      assert.equal(record.systemPrompt, "just a");
      assert.equal(record.history.length, 2);
      await manager.setSessionPrompt(key("a"), "just a again", true);
      record = await manager.open(key("a"));
      assert.equal(record.systemPrompt, "just a again");
      assert.deepEqual(record.history, []);
      assert.equal(record.generation, 1);
      assert.equal(await manager.projectPrompt("maze"), "default maze");
      assert.equal((await manager.open(key("b"))).systemPrompt, "default maze");
    });

    test("a per-session prompt creates a missing session", async () => {
      const { manager, key } = await setup();
      await manager.setSessionPrompt(key("fresh"), "mine", true);
      assert.equal((await manager.open(key("fresh"))).systemPrompt, "mine");
    });

    test("clear keeps the prompt and resets turns and maze counters", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 2);
      await withTurns(key("b"), 1);
      await manager.setSessionPrompt(key("a"), "kept", false);
      const { generation } = await manager.open(key("a"));
      const maze = { stateRepeatCount: 3, assistantRepeatCount: 2 };
      await manager.commitTurn(key("a"), generation, user("q"), assistant("r"), maze);
      assert.equal(await manager.clear("maze"), 2);
      const record = await manager.open(key("a"));
      assert.equal(record.systemPrompt, "kept");
      assert.deepEqual(record.history, []);
      assert.deepEqual(record.projectState, {});
      assert.deepEqual((await manager.open(key("b"))).history, []);
      assert.equal(await manager.clear("maze", "missing"), 0);
    });

    test("delete forgets one session or all of a project", async () => {
      const { manager, key } = await setup();
      for (const id of ["a", "b", "c"]) await manager.open(key(id));
      await manager.open(key("a", "racing"));
      assert.equal(await manager.delete("maze", "a"), 1);
      assert.equal(await manager.delete("maze", "a"), 0);
      assert.equal(await manager.delete("maze"), 2);
      assert.equal(await manager.count(), 1);
    });

    test("concurrent commit and clear serialize: a clear after a commit leaves no history", async () => {
      const { manager, key } = await setup();
      const { generation } = await manager.open(key("s1"));
      const [committed, cleared] = await Promise.all([
        manager.commitTurn(key("s1"), generation, user("q"), assistant("a")),
        manager.clear("maze", "s1"),
      ]);
      assert.equal(committed, true);
      assert.equal(cleared, 1);
      const record = await manager.open(key("s1"));
      assert.deepEqual(record.history, [], "the commit's write must not land after the clear's");
      assert.equal(record.generation, 1);
    });

    test("concurrent clear then commit: the commit is refused", async () => {
      const { manager, key } = await setup();
      const { generation } = await manager.open(key("s1"));
      const [, committed] = await Promise.all([
        manager.clear("maze", "s1"),
        manager.commitTurn(key("s1"), generation, user("q"), assistant("a")),
      ]);
      assert.equal(committed, false);
      assert.deepEqual((await manager.open(key("s1"))).history, []);
    });

    test("read() hands out copies", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 1);
      const record = (await manager.read(key("a")))!;
      record.history.push(user("sneaky"));
      record.history[0]!.content = "changed";
      (record.projectState as { stateRepeatCount: number }).stateRepeatCount = 5;
      const again = (await manager.read(key("a")))!;
      assert.deepEqual(again.history, [user("u0"), assistant("a0")]);
      assert.deepEqual(again.projectState, {});
    });

    test("a record from open() stays as it was while the session changes (updates replace, never edit)", async () => {
      const { manager, key, withTurns } = await setup();
      await withTurns(key("a"), 1);
      const held = await manager.open(key("a"));
      assert.equal(await manager.commitTurn(key("a"), held.generation, user("q"), assistant("r")), true);
      await manager.setSessionPrompt(key("a"), "other", false);
      await manager.clear("maze", "a");
      assert.deepEqual(held.history, [user("u0"), assistant("a0")]);
      assert.notEqual(held.systemPrompt, "other");
      assert.equal((await manager.open(key("a"))).history.length, 0);
    });
  });
}
