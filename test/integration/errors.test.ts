import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { testSettings } from "../support/settings.js";
import { Gateway } from "../../src/gateway.js";
import { freePort, startAedes, type TestBroker } from "../support/brokers.js";
import { contextOverflow, FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { startRig, type Rig } from "../support/harness.js";
import { eventually } from "../support/wait.js";

type Message = { role: string; content: string };

describe("bad input gets an error reply (PROTOCOL B5)", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { projects: ["general", "maze"], limits: { maxPayloadBytes: 2048 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  const cases: [string, string | object][] = [
    ["a JSON array", "[1, 2, 3]"],
    ["a missing message", { sessionId: "bad" }],
    ["a blank message", { sessionId: "bad", message: "   " }],
    ["a non-string message", { sessionId: "bad", message: { text: "hi" } }],
    ["a non-numeric temperature", { sessionId: "bad", message: "hi", temperature: "hot" }],
    ["a non-numeric topP", { sessionId: "bad", message: "hi", topP: [0.5] }],
    ["a non-numeric maxTokens", { sessionId: "bad", message: "hi", maxTokens: "lots" }],
    ["a non-string systemPrompt", { sessionId: "bad", message: "hi", systemPrompt: 12 }],
    ["an oversized payload", { sessionId: "bad", message: "x".repeat(4000) }],
  ];
  for (const [name, payload] of cases) {
    test(name, async () => {
      rig.model.resetStats();
      await rig.game.publish("general/user_input", payload);
      const reply = await rig.game.next((t) => t.startsWith("general/assistant_response/"));
      assert.match(reply.text, /^Error: /);
      if (typeof payload === "object") assert.equal(reply.topic, "general/assistant_response/bad");
      assert.equal(rig.model.requests.length, 0, "nothing reaches the model");
    });
  }

  test("a maze snapshot that is not a JSON object gets a JSON error on maze/hint", async () => {
    await rig.game.publish("maze/state", "not json at all");
    const reply = await rig.game.next((t) => t.startsWith("maze/hint/"));
    assert.equal(typeof JSON.parse(reply.text).error, "string");
  });

  test("the gateway keeps serving after all of that", async () => {
    await rig.game.publish("general/user_input", { sessionId: "fine", message: "still there?" });
    assert.equal((await rig.game.next("general/assistant_response/fine")).text, "reply to: still there?");
  });
});

describe("model server failures", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { server: { timeoutSec: 1.5 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a server answering 500 gives an error reply, and history stays clean", async () => {
    rig.model.handler = () => ({ status: 500 });
    await rig.game.publish("general/user_input", { sessionId: "e500", message: "boom" });
    assert.match((await rig.game.next("general/assistant_response/e500")).text, /^Error: /);
    rig.model.resetStats();
    rig.model.handler = () => ({ text: "fine" });
    await rig.game.publish("general/user_input", { sessionId: "e500", message: "again" });
    await rig.game.next("general/assistant_response/e500");
    assert.equal(rig.model.requests[0]?.body.messages.length, 2, "the failed turn was not stored");
  });

  test("a hanging server gives a timeout error reply", async () => {
    rig.model.handler = () => ({ hang: true });
    await rig.game.publish("general/user_input", { sessionId: "hang", message: "anyone?" });
    const reply = await rig.game.next("general/assistant_response/hang", 10_000);
    assert.match(reply.text, /^Error: .*tim/i);
  });

  test("a context overflow drops older turns and retries once", async () => {
    rig.model.handler = (req) => ({ text: `ok ${(req.body.messages as Message[]).at(-1)?.content}` });
    for (let i = 0; i < 4; i++) {
      await rig.game.publish("general/user_input", { sessionId: "long", message: `turn ${i}` });
      await rig.game.next("general/assistant_response/long");
    }
    rig.model.resetStats();
    rig.model.handler = (req, index) =>
      index === 0 ? contextOverflow(5000, 64) : { text: `short ${(req.body.messages as Message[]).length}` };
    await rig.game.publish("general/user_input", { sessionId: "long", message: "one more" });
    const reply = await rig.game.next("general/assistant_response/long");
    assert.equal(rig.model.requests.length, 2);
    assert.ok(rig.model.requests[1]!.body.messages.length < rig.model.requests[0]!.body.messages.length);
    assert.match(reply.text, /^short /);
  });

  test("a context overflow that persists gives a clear error", async () => {
    rig.model.handler = () => contextOverflow(5000, 64);
    await rig.game.publish("general/user_input", { sessionId: "huge", message: "x" });
    assert.match((await rig.game.next("general/assistant_response/huge")).text, /^Error: .*context/i);
  });
});

describe("admission limits", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { server: { slots: 1 }, scheduler: { maxQueue: 2, rateLimitPerMinute: 3 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a full queue answers with the overload message", async () => {
    rig.model.handler = () => ({ text: "slow", delayMs: 300 });
    for (let s = 0; s < 5; s++)
      await rig.game.publish("general/user_input", { sessionId: `q${s}`, message: "hi" });
    const replies = await rig.game.collect((t) => t.startsWith("general/assistant_response/q"), 5);
    const overloaded = replies.filter(
      (r) => r.text === "Error: Server is overloaded. Please try again in a moment.",
    );
    assert.equal(overloaded.length, 2, "1 running + 2 queued are accepted, 2 refused");
  });

  test("the per-session rate limit answers with the original's message", async () => {
    rig.model.handler = () => ({ text: "ok" });
    const texts: string[] = [];
    for (let i = 0; i < 4; i++) {
      await rig.game.publish("general/user_input", { sessionId: "chatty", message: `m${i}` });
      texts.push((await rig.game.next("general/assistant_response/chatty")).text);
    }
    assert.deepEqual(texts, [
      "ok",
      "ok",
      "ok",
      "Error: Rate limit exceeded. Please slow down your requests.",
    ]);
  });
});

describe("model server down at start", () => {
  test("the gateway starts, answers errors, and recovers when the server appears", async () => {
    const broker = await startAedes();
    const port = await freePort();
    const gateway = new Gateway(
      testSettings({
        projects: ["general"],
        mqtt: { url: broker.url },
        server: { url: `http://127.0.0.1:${port}/v1`, probeIntervalSec: 0.1, timeoutSec: 2 },
        logging: { level: "silent", statsIntervalSec: 0 },
        http: { port: 0 },
      }),
    );
    await gateway.start();
    const game = await GameClient.connect(broker.url, ["general/assistant_response/#"]);
    let model: FakeModelServer | undefined;
    try {
      assert.equal(gateway.backend.health().healthy, false);
      await game.publish("general/user_input", { sessionId: "down", message: "hello?" });
      assert.match((await game.next("general/assistant_response/down")).text, /^Error: .*model server/i);

      model = await FakeModelServer.start({ port });
      await eventually(() => gateway.backend.health().healthy);
      await game.publish("general/user_input", { sessionId: "down", message: "now?" });
      assert.equal((await game.next("general/assistant_response/down")).text, "reply to: now?");
    } finally {
      await game.close();
      await gateway.stop();
      await model?.stop();
      await broker.stop();
    }
  });
});
