/**
 * Structured replies (PROTOCOL C7) through a broker, with the fake model server standing in for a
 * server that sends what it is told: one that ignores the schema, or misses it once.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { startRig, type Rig } from "../support/harness.js";

const HINT_SCHEMA = {
  type: "object",
  properties: { hint: { type: "string" }, suggestion: { type: "string" } },
  required: ["hint", "suggestion"],
  additionalProperties: false,
};
const GOOD = '{"hint": "Nearly there!", "suggestion": "go right twice"}';
const state = (sessionId: string, extra: object = {}) => ({
  sessionId,
  player_pos: [1, 1],
  exit_pos: [4, 4],
  ...extra,
});

describe("structured replies (PROTOCOL C7)", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, {
      projects: ["maze", "general", { name: "actions", mazeTools: true }],
      server: { slots: 2 },
    });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a maze hint is asked for as JSON by schema, with a short default length", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: GOOD });
    await rig.game.publish("maze/state", state("s1"));
    assert.equal((await rig.game.next("maze/hint/s1")).text, GOOD);
    const body = rig.model.requests[0]?.body;
    assert.deepEqual(body.response_format, {
      type: "json_schema",
      json_schema: { name: "maze_reply", schema: HINT_SCHEMA, strict: true },
    });
    assert.equal(body.max_tokens, 160);
    assert.equal(body.tools, undefined);
  });

  test("a turn's own maxTokens wins over the project's default", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: GOOD });
    await rig.game.publish("maze/state", state("s2", { maxTokens: 300 }));
    await rig.game.next("maze/hint/s2");
    assert.equal(rig.model.requests[0]?.body.max_tokens, 300);
  });

  test("a reply that misses the schema is asked for once more; the good one is sent and stored", async () => {
    rig.model.resetStats();
    rig.model.handler = (_, index) => ({ text: index === 0 ? "Go right, then up." : GOOD });
    await rig.game.publish("maze/state", state("s3"));
    assert.equal((await rig.game.next("maze/hint/s3")).text, GOOD);
    assert.equal(rig.model.requests.length, 2);
    const session = await rig.gateway.sessions.read({ project: "maze", sessionId: "s3" });
    assert.deepEqual(
      session?.history.map((m) => m.content),
      [rig.model.requests[0]?.body.messages[1].content, GOOD],
    );
  });

  test("two misses give an error reply that says so, and nothing is stored", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: '{"hint": "Nearly there!"}' });
    await rig.game.publish("maze/state", state("s4"));
    const reply = JSON.parse((await rig.game.next("maze/hint/s4")).text) as { error: string };
    assert.match(reply.error, /did not match the required JSON schema, twice/);
    assert.match(reply.error, /must have required property 'suggestion'/);
    assert.equal(rig.model.requests.length, 2, "one retry, no more");
    const session = await rig.gateway.sessions.read({ project: "maze", sessionId: "s4" });
    assert.deepEqual(session?.history ?? [], []);
  });

  test("the usage of a turn asked twice adds up both calls, in the envelope and the metrics", async () => {
    rig.model.resetStats();
    const usage = (prompt_tokens: number, completion_tokens: number) => ({
      prompt_tokens,
      completion_tokens,
    });
    rig.model.handler = (_, index) =>
      index === 0 ? { text: "not JSON", usage: usage(30, 4) } : { text: '{"a": 1}', usage: usage(34, 6) };
    const tokens = async (direction: string) => {
      const text = await rig.gateway.metrics.text();
      const line = new RegExp(`llmqtt_tokens_total\\{project="general",direction="${direction}"\\} (\\d+)`);
      return Number(line.exec(text)?.[1] ?? 0);
    };
    const before = { prompt: await tokens("prompt"), completion: await tokens("completion") };
    const ask = { message: "json please", responseSchema: "json_object", responseFormat: "json" };
    await rig.game.publish("general/user_input", { sessionId: "twice", ...ask });
    const reply = JSON.parse((await rig.game.next("general/assistant_response/twice")).text);
    assert.equal(reply.response, '{"a": 1}');
    assert.deepEqual(reply.usage, { promptTokens: 64, completionTokens: 10 });

    // A turn that fails after its two calls has still cost their tokens.
    rig.model.handler = () => ({ text: "never JSON", usage: usage(20, 5) });
    await rig.game.publish("general/user_input", { sessionId: "missed", ...ask });
    const failed = JSON.parse((await rig.game.next("general/assistant_response/missed")).text);
    assert.equal(failed.error.code, "invalid_reply");
    assert.equal((await tokens("prompt")) - before.prompt, 64 + 40);
    assert.equal((await tokens("completion")) - before.completion, 10 + 10);
  });

  test("a reply cut off at maxTokens says so", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: '{"hint": "Nearly th', finishReason: "length" });
    await rig.game.publish("general/user_input", {
      sessionId: "s5",
      message: "hint?",
      responseSchema: "json_object",
      responseFormat: "json",
    });
    const reply = JSON.parse((await rig.game.next("general/assistant_response/s5")).text);
    assert.equal(reply.error.code, "invalid_reply");
    assert.equal(reply.error.retryable, false);
    assert.match(reply.error.message, /not JSON; it was cut off at maxTokens/);
  });

  test("a request's own schema is sent and checked; json_object asks for any object", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: '{"answer": 42}' });
    const schema = { type: "object", properties: { answer: { type: "integer" } }, required: ["answer"] };
    await rig.game.publish("general/user_input", { sessionId: "s6", message: "?", responseSchema: schema });
    assert.equal((await rig.game.next("general/assistant_response/s6")).text, '{"answer": 42}');
    await rig.game.publish("general/user_input", {
      sessionId: "s6",
      message: "?",
      responseSchema: "json_object",
    });
    assert.equal((await rig.game.next("general/assistant_response/s6")).text, '{"answer": 42}');
    const [own, any] = rig.model.requests.map((request) => request.body.response_format);
    assert.deepEqual(own, { type: "json_schema", json_schema: { name: "reply", schema, strict: false } });
    assert.deepEqual(any, {
      type: "json_schema",
      json_schema: { name: "reply", schema: { type: "object" }, strict: false },
    });
    rig.model.resetStats();
    await rig.game.publish("general/user_input", { sessionId: "s6", message: "plain" });
    await rig.game.next("general/assistant_response/s6");
    assert.equal(rig.model.requests[0]?.body.response_format, undefined, "general has no schema of its own");
  });

  test("a bad schema is refused before any model call", async () => {
    rig.model.resetStats();
    const bad = [{ type: "strng" }, { type: "string", pattern: "^(a+)+$" }, "yaml"];
    for (const responseSchema of bad) {
      await rig.game.publish("general/user_input", { sessionId: "s7", message: "?", responseSchema });
      assert.match(
        (await rig.game.next("general/assistant_response/s7")).text,
        /^Error: Invalid request: responseSchema: /,
      );
    }
    assert.equal(rig.model.requests.length, 0);
  });

  test("a request's schema on a project whose tools are on is refused", async () => {
    rig.model.resetStats();
    await rig.game.publish("actions/user_input", {
      sessionId: "s8",
      message: "?",
      responseSchema: "json_object",
    });
    assert.match(
      (await rig.game.next("actions/assistant_response/s8")).text,
      /^Error: Invalid request: responseSchema cannot be used on a project whose tools are on/,
    );
    assert.equal(rig.model.requests.length, 0);
  });

  test("a streamed turn that misses is retried unstreamed; the final chunk carries the checked reply", async () => {
    rig.model.resetStats();
    rig.model.handler = (_, index) => ({ text: index === 0 ? "not json at all" : GOOD });
    await rig.game.publish("maze/state", state("s9", { stream: true }));
    assert.equal((await rig.game.next("maze/hint/s9")).text, GOOD);
    const chunks: { done?: boolean; response?: string }[] = [];
    while (!chunks.at(-1)?.done) chunks.push(JSON.parse((await rig.game.next("maze/hint/s9/stream")).text));
    assert.equal(chunks.at(-1)?.response, GOOD);
    // The server is always asked for a stream (so that a cancel stops it); the retry's pieces
    // reach no client: only the final chunk carries the checked reply.
    assert.equal(rig.model.requests.length, 2);
    assert.ok(chunks.slice(0, -1).every((chunk) => !JSON.stringify(chunk).includes("suggestion")));
  });
});
