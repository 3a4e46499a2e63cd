import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { BROKERS, startRig, type Rig } from "../support/harness.js";

type Message = { role: string; content: string };
const lastUser = (body: { messages: Message[] }) => body.messages[body.messages.length - 1]?.content;

for (const kind of BROKERS) {
  describe(`chat turns through ${kind.name}`, { skip: kind.skip }, () => {
    let broker: TestBroker;
    let rig: Rig;

    before(async () => {
      broker = await kind.start();
      rig = await startRig(broker, { server: { slots: 4 } });
    });
    after(async () => {
      await rig.stop();
      await broker.stop();
    });

    test("a plain-text payload is a turn of a fresh default session", async () => {
      await rig.game.publish("general/user_input", "What is MQTT?");
      const reply = await rig.game.next((t) => t.startsWith("general/assistant_response/"));
      assert.match(reply.topic, /^general\/assistant_response\/default-[0-9a-f]{8}$/);
      assert.equal(reply.text, "reply to: What is MQTT?");
      assert.equal(reply.retain, false);
    });

    test("the 5-level replyTopic of chat clients is used exactly", async () => {
      const topic = "general/assistant_response/s-5/client-a/req-17";
      await rig.game.publish("general/user_input", {
        sessionId: "s-5",
        message: "hello",
        clientId: "client-a",
        requestId: "req-17",
        replyTopic: topic,
      });
      const reply = await rig.game.next(topic);
      assert.equal(reply.text, "reply to: hello");
    });

    test("a numeric session id and the project's system prompt", async () => {
      rig.model.resetStats();
      await rig.game.publish("driving/user_input", { sessionId: 42, message: "how do brakes work?" });
      const reply = await rig.game.next("driving/assistant_response/42");
      assert.equal(reply.text, "reply to: how do brakes work?");
      const body = rig.model.requests[0]?.body;
      assert.equal(body.messages[0].role, "system");
      assert.match(body.messages[0].content, /Cap/);
      assert.match(body.messages[0].content, /<Cont or EOS><PlayerOp:x><AgentOP:y>/);
    });

    test("a replyTopic aimed at another session falls back to the sender's own topic", async () => {
      await rig.game.publish("general/user_input", {
        sessionId: "mine",
        message: "steer me",
        replyTopic: "general/assistant_response/victim/x",
      });
      const reply = await rig.game.next((t) => t.startsWith("general/assistant_response/"));
      assert.equal(reply.topic, "general/assistant_response/mine");
    });

    test("20 turns of one session sent at once are answered in order with complete history", async () => {
      rig.model.resetStats();
      rig.model.handler = (req) => ({ text: `answer ${lastUser(req.body)}`, delayMs: 5 });
      const topic = "general/assistant_response/ordered";
      for (let i = 0; i < 20; i++) {
        await rig.game.publish("general/user_input", { sessionId: "ordered", message: `q${i}` });
      }
      const replies = await rig.game.collect(topic, 20);
      assert.deepEqual(
        replies.map((r) => r.text),
        Array.from({ length: 20 }, (_, i) => `answer q${i}`),
      );
      assert.equal(rig.model.maxInFlight, 1, "one turn in flight per session");
      rig.model.requests.forEach((req, i) => {
        const turns = (req.body.messages as Message[]).slice(1);
        const expected: Message[] = [];
        for (let j = 0; j < i; j++) {
          expected.push({ role: "user", content: `q${j}` }, { role: "assistant", content: `answer q${j}` });
        }
        expected.push({ role: "user", content: `q${i}` });
        assert.deepEqual(turns, expected, `history of request ${i}`);
      });
    });

    test("different sessions run in parallel up to the slot count, never above", async () => {
      rig.model.resetStats();
      rig.model.handler = (req) => ({ text: `p ${lastUser(req.body)}`, delayMs: 50 });
      for (let s = 0; s < 10; s++) {
        await rig.game.publish("general/user_input", { sessionId: `par-${s}`, message: `m${s}` });
      }
      await rig.game.collect((t) => t.startsWith("general/assistant_response/par-"), 10);
      assert.equal(rig.model.maxInFlight, 4);
    });

    test("a turn's systemPrompt replaces the session's prompt and keeps its history", async () => {
      rig.model.resetStats();
      rig.model.handler = (req) => ({ text: `ok ${lastUser(req.body)}` });
      await rig.game.publish("general/user_input", { sessionId: "sp", message: "one" });
      await rig.game.next("general/assistant_response/sp");
      await rig.game.publish("general/user_input", {
        sessionId: "sp",
        message: "two",
        systemPrompt: "Be a pirate.",
      });
      await rig.game.next("general/assistant_response/sp");
      const body = rig.model.requests[1]?.body;
      assert.deepEqual(body.messages, [
        { role: "system", content: "Be a pirate." },
        { role: "user", content: "one" },
        { role: "assistant", content: "ok one" },
        { role: "user", content: "two" },
      ]);
    });

    test("sampling overrides reach the server, explicit 0 included, with thinking off and cache_prompt", async () => {
      rig.model.resetStats();
      await rig.game.publish("general/user_input", {
        sessionId: "samp",
        message: "x",
        temperature: 0,
        topP: 0.5,
        maxTokens: 7,
      });
      await rig.game.next("general/assistant_response/samp");
      const body = rig.model.requests[0]?.body;
      assert.equal(body.temperature, 0);
      assert.equal(body.top_p, 0.5);
      assert.equal(body.max_tokens, 7);
      assert.equal(body.cache_prompt, true);
      assert.deepEqual(body.chat_template_kwargs, { enable_thinking: false });
    });

    test("reasoning text never leaks into the reply", async () => {
      rig.model.handler = () => ({ text: "visible", reasoning: "secret chain of thought" });
      await rig.game.publish("general/user_input", { sessionId: "think", message: "x" });
      const reply = await rig.game.next("general/assistant_response/think");
      assert.equal(reply.text, "visible");
    });

    test("clear_history and delete_session work for any project", async () => {
      rig.model.handler = (req) => ({ text: `c ${lastUser(req.body)}` });
      await rig.game.publish("prompt_portal/user_input", { sessionId: "owo", message: "first" });
      await rig.game.next("prompt_portal/assistant_response/owo");
      await rig.game.publish("prompt_portal/clear_history/owo", "");
      rig.model.resetStats();
      await rig.game.publish("prompt_portal/user_input", { sessionId: "owo", message: "second" });
      await rig.game.next("prompt_portal/assistant_response/owo");
      assert.equal(rig.model.requests[0]?.body.messages.length, 2, "system + new turn only");

      await rig.game.publish("prompt_portal/template/owo", { template: "Answer in French." });
      await rig.game.publish("prompt_portal/delete_session/owo", "");
      rig.model.resetStats();
      await rig.game.publish("prompt_portal/user_input", { sessionId: "owo", message: "third" });
      await rig.game.next("prompt_portal/assistant_response/owo");
      const system = rig.model.requests[0]?.body.messages[0].content as string;
      assert.doesNotMatch(system, /French/, "a deleted session starts again from the project prompt");
    });
  });
}

test("many turns at once raise no listener warning: each running turn listens to the shutdown", async () => {
  const broker = await startAedes();
  const rig = await startRig(broker, { server: { slots: 24 } });
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  process.on("warning", onWarning);
  try {
    // Long enough that all 24 overlap even on a busy machine.
    rig.model.handler = (req) => ({ text: `w ${lastUser(req.body)}`, delayMs: 1000 });
    await Promise.all(
      Array.from({ length: 24 }, (_, s) =>
        rig.game.publish("general/user_input", { sessionId: `wide-${s}`, message: `m${s}` }),
      ),
    );
    await rig.game.collect((t) => t.startsWith("general/assistant_response/wide-"), 24);
    assert.ok(rig.model.maxInFlight > 10, `${rig.model.maxInFlight} turns ran at once`);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    assert.deepEqual(warnings, []);
  } finally {
    process.off("warning", onWarning);
    await rig.stop();
    await broker.stop();
  }
});
