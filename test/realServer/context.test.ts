import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { llamaServerSkip } from "../support/llamaServer.js";
import { logged, startProxiedRig, type ProxiedRig, type RealRig } from "../support/realRig.js";
import type { RecordingProxy } from "../support/recordingProxy.js";

const skip = llamaServerSkip();
const RETRY = "context exceeded; retrying with fewer turns";

describe("real llama-server: context overflow", { skip }, () => {
  let proxy: RecordingProxy;
  let rig: RealRig;

  let setup: ProxiedRig;

  before(async () => {
    setup = await startProxiedRig({ ctx: 4096, parallel: 2 });
    ({ proxy, rig } = setup);
  });
  after(() => setup?.stop());

  test("a history the server finds too long is answered after dropping older turns once", async () => {
    // Before any answer llmqtt guesses 3.5 characters a token; this model has about one.
    const key = { project: "general", sessionId: "long" };
    const session = await rig.gateway.sessions.open(key);
    for (let i = 0; i < 6; i++) {
      const { generation } = await rig.gateway.sessions.open(key);
      await rig.gateway.sessions.commitTurn(
        key,
        generation,
        { role: "user", content: `question ${i} `.repeat(40) },
        { role: "assistant", content: `answer ${i} `.repeat(40) },
      );
    }
    assert.equal(session.history.length, 0);
    proxy.clear();
    await rig.game.publish("general/user_input", { sessionId: "long", message: "and now?" });
    const reply = await rig.game.next("general/assistant_response/long", 30_000);
    assert.doesNotMatch(
      reply.text,
      /^Error/,
      JSON.stringify(
        proxy.chats.map((c) => [c.status, (c.body["messages"] as unknown[]).length, c.rawBody.length]),
      ) + rig.logs.text().slice(-1500),
    );
    const [refused, retried] = proxy.chats;
    assert.equal(refused!.status, 400);
    assert.equal(retried!.status, 200);
    const sent = (exchange: typeof refused) => (exchange!.body["messages"] as unknown[]).length;
    assert.ok(sent(retried) < sent(refused));
    assert.equal(logged(rig.logs, RETRY).length, 1);
  });

  test("a single message longer than the context gets a clear error reply", async () => {
    await rig.game.publish("general/user_input", { sessionId: "huge", message: "word ".repeat(1000) });
    const reply = await rig.game.next("general/assistant_response/huge", 30_000);
    assert.match(reply.text, /^Error: .*context/i);
  });
});

describe("real llama-server: a budget that fits the server", { skip }, () => {
  let proxy: RecordingProxy;
  let rig: RealRig;

  let setup: ProxiedRig;

  before(async () => {
    // 2,048 tokens per slot, under the default 4,096-token budget.
    setup = await startProxiedRig(
      { ctx: 16_384, parallel: 8 },
      { overrides: { sampling: { maxTokens: 24 } } },
    );
    ({ proxy, rig } = setup);
  });
  after(() => setup?.stop());

  test("long sessions are trimmed before sending, never refused by the server", async () => {
    assert.equal(rig.gateway.backend.health().contextTokens, 2048);
    const sessions = Array.from({ length: 8 }, (_, i) => `s${i}`);
    for (let turn = 0; turn < 7; turn++) {
      for (const sessionId of sessions) {
        await rig.game.publish("general/user_input", {
          sessionId,
          message: `Turn ${turn}: tell me more about the little dog and the big red ball. `.repeat(5),
        });
      }
      for (const sessionId of sessions) {
        const reply = await rig.game.next(`general/assistant_response/${sessionId}`, 30_000);
        assert.doesNotMatch(reply.text, /^Error/, rig.logs.text().slice(-3000));
      }
    }
    assert.deepEqual(logged(rig.logs, RETRY), []);
    assert.ok(proxy.chats.every((exchange) => exchange.status === 200));
    const longest = Math.max(
      ...proxy.chats.map((exchange) => exchange.timings!.prompt_n + exchange.timings!.cache_n),
    );
    assert.ok(longest <= 2048 - 24, `longest prompt ${longest} tokens`);
  });
});
