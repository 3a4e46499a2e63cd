import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { OpenAICompatibleBackend } from "../../src/backends/openaiBackend.js";
import { ReasoningFilter, stripReasoning } from "../../src/backends/reasoning.js";
import type { ChatRequest } from "../../src/backends/types.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { failure, request, settings, silent } from "./helpers.js";

const fastRetry = { baseDelayMs: 5, maxDelayMs: 20 };

/** A streaming request that records its deltas. */
function streaming(overrides: Partial<ChatRequest> = {}): { req: ChatRequest; deltas: string[] } {
  const deltas: string[] = [];
  return { req: request({ onDelta: (text) => deltas.push(text), ...overrides }), deltas };
}

/** Feeds `text` to a filter split at the given positions and returns what it let through. */
function filtered(text: string, cuts: number[]): string {
  const filter = new ReasoningFilter();
  let out = "";
  let from = 0;
  for (const cut of [...cuts, text.length]) {
    out += filter.push(text.slice(from, cut));
    from = cut;
  }
  return out + filter.end();
}

describe("ReasoningFilter", () => {
  const samples = [
    "The exit is north.",
    "<think>\nsecret plan\n</think>\n\nThe exit is north.",
    "<think>a</think><think>b</think>answer",
    "Go <think>secret</think>north",
    "<think>secret plan that never ends",
    "a < b and c<thin d",
    "  spaced reply",
    "   ",
    "",
    "tail <",
    "x <think>y</think>",
  ];

  test("agrees with stripReasoning (up to trailing whitespace) wherever the stream is cut", () => {
    for (const sample of samples) {
      const expected = stripReasoning(sample);
      for (let a = 0; a <= sample.length; a++) {
        for (let b = a; b <= sample.length; b++) {
          const got = filtered(sample, [a, b]);
          assert.equal(got.trimEnd(), expected.trimEnd(), `${JSON.stringify(sample)} cut at ${a},${b}`);
        }
      }
      const perChar = filtered(
        sample,
        [...sample].map((_, i) => i),
      );
      assert.equal(perChar.trimEnd(), expected.trimEnd(), `${JSON.stringify(sample)} char by char`);
    }
  });

  test("lets text through as soon as it cannot be the start of a tag", () => {
    const filter = new ReasoningFilter();
    assert.equal(filter.push("Hello"), "Hello");
    assert.equal(filter.push(" wor"), " wor");
    assert.equal(filter.push("ld <"), "ld ");
    assert.equal(filter.push("3"), "<3");
    assert.equal(filter.push(" <thi"), " ");
    assert.equal(filter.push("nk>hidden</thi"), "");
    assert.equal(filter.push("nk>shown"), "shown");
    assert.equal(filter.end(), "");
  });

  test("drops a lone closing tag without taking back what was shown", () => {
    assert.equal(filtered("plan</think>answer", [3, 7]), "plananswer");
  });
});

describe("OpenAICompatibleBackend streaming", () => {
  let fake: FakeModelServer;
  let backend: OpenAICompatibleBackend;

  before(async () => {
    fake = await FakeModelServer.start();
    backend = new OpenAICompatibleBackend(settings({ url: fake.url }), silent, { retry: fastRetry });
  });
  beforeEach(() => {
    fake.resetStats();
    fake.handler = () => ({});
  });
  after(() => fake.stop());

  test("asks for a stream with usage and delivers deltas that add up to the text", async () => {
    fake.handler = () => ({
      text: "The exit is north, past the troll.",
      usage: { prompt_tokens: 12, completion_tokens: 9 },
    });
    const { req, deltas } = streaming();
    const result = await backend.chat(req);
    const body = fake.requests[0]?.body;
    assert.equal(body.stream, true);
    assert.deepEqual(body.stream_options, { include_usage: true });
    assert.ok(deltas.length > 1, "more than one delta");
    assert.equal(deltas.join(""), "The exit is north, past the troll.");
    assert.deepEqual(result, {
      text: "The exit is north, past the troll.",
      toolCalls: [],
      finishReason: "stop",
      usage: { promptTokens: 12, completionTokens: 9 },
    });
  });

  test("reads the cached prompt tokens from the usage chunk, or from timings alone", async () => {
    const usage = { prompt_tokens: 300, completion_tokens: 7 };
    for (const reportIn of ["usage", "timings"] as const) {
      fake.handler = () => ({ text: "Go north.", usage, cache: { cachedTokens: 299, reportIn } });
      const { usage: got } = await backend.chat(streaming().req);
      assert.deepEqual(got, { promptTokens: 300, completionTokens: 7, cachedTokens: 299 }, reportIn);
    }
  });

  test("never delivers reasoning_content", async () => {
    fake.handler = () => ({ text: "The exit is north.", reasoning: "secret plan, very secret" });
    const { req, deltas } = streaming();
    const result = await backend.chat(req);
    assert.equal(result.text, "The exit is north.");
    assert.equal(deltas.join(""), "The exit is north.");
    assert.ok(!deltas.some((d) => d.includes("secret")));
  });

  test("withholds <think> blocks whose tags are split across chunks", async () => {
    // Chunks are 4 characters; prefixes of different lengths move the tags across boundaries.
    for (let shift = 0; shift < 4; shift++) {
      const prefix = "ab".repeat(shift);
      fake.handler = () => ({ text: `${prefix}<think>\nsecret plan\n</think>north` });
      const { req, deltas } = streaming();
      const result = await backend.chat(req);
      assert.equal(deltas.join(""), `${prefix}north`);
      assert.equal(result.text, `${prefix}north`);
      assert.ok(!deltas.some((d) => /secret|think|[<>]/.test(d)), JSON.stringify(deltas));
    }
    fake.handler = () => ({ text: "<think>\nsecret plan\n</think>\n\nThe exit is north." });
    const { req, deltas } = streaming();
    assert.equal((await backend.chat(req)).text, "The exit is north.");
    assert.equal(deltas.join(""), "The exit is north.");
  });

  test("an unterminated <think> delivers nothing", async () => {
    fake.handler = () => ({ text: "<think>secret plan that never ends", finishReason: "length" });
    const { req, deltas } = streaming();
    const result = await backend.chat(req);
    assert.deepEqual(deltas, []);
    assert.equal(result.text, "");
    assert.equal(result.finishReason, "length");
  });

  test("assembles tool calls from their deltas", async () => {
    const parameters = { type: "object", properties: { x: { type: "integer" } } };
    fake.handler = () => ({
      text: "",
      toolCalls: [
        { name: "break_wall", arguments: '{"x":3,"y":-12,"reason":"shortcut"}' },
        { name: "move", arguments: '{"direction":"north"}' },
      ],
    });
    const { req, deltas } = streaming({
      tools: [
        { name: "break_wall", description: "Break a wall", parameters },
        { name: "move", description: "Move", parameters },
      ],
    });
    const result = await backend.chat(req);
    assert.deepEqual(deltas, []);
    assert.deepEqual(result.toolCalls, [
      { name: "break_wall", arguments: '{"x":3,"y":-12,"reason":"shortcut"}' },
      { name: "move", arguments: '{"direction":"north"}' },
    ]);
    assert.equal(result.finishReason, "tool_calls");
    assert.ok(result.usage);
  });

  test("retries a failure before the first delta", async () => {
    fake.handler = (_req, i) => (i === 0 ? { status: 500 } : { text: "second try" });
    const first = streaming();
    assert.equal((await backend.chat(first.req)).text, "second try");
    assert.equal(first.deltas.join(""), "second try");

    // A stream that breaks after reasoning but before any visible text is retried too.
    fake.resetStats();
    fake.handler = (_req, i) =>
      i === 0 ? { text: "lost", reasoning: "thinking", breakAfterContent: 0 } : { text: "kept" };
    const second = streaming();
    assert.equal((await backend.chat(second.req)).text, "kept");
    assert.equal(second.deltas.join(""), "kept");
    assert.equal(fake.requests.length, 2);
  });

  test("a failure after the first delta is final and carries the delivered text", async () => {
    fake.handler = () => ({ text: "Once upon a time there was a maze.", breakAfterContent: 3 });
    const { req, deltas } = streaming();
    const err = await failure(backend.chat(req), "unreachable");
    assert.equal(err.partialText, "Once upon a ");
    assert.equal(deltas.join(""), "Once upon a ");
    assert.equal(fake.requests.length, 1);
  });

  test("the deadline mid-stream ends it with timeout and the delivered text", async () => {
    fake.handler = () => ({ text: "slow words keep coming ".repeat(8), chunkDelayMs: 150 });
    const { req, deltas } = streaming({ deadline: Date.now() + 1000 });
    const err = await failure(backend.chat(req), "timeout");
    assert.ok(deltas.length > 0);
    assert.equal(err.partialText, deltas.join(""));
    assert.equal(fake.requests.length, 1);
  });

  test("aborting mid-stream ends it with cancelled and the delivered text", async () => {
    fake.handler = () => ({ text: "slow words keep coming", chunkDelayMs: 30 });
    const controller = new AbortController();
    const deltas: string[] = [];
    const req = request({
      onDelta: (text) => {
        deltas.push(text);
        controller.abort();
      },
    });
    const err = await failure(backend.chat(req, controller.signal), "cancelled");
    assert.equal(err.partialText, deltas.join(""));
    assert.equal(fake.requests.length, 1);
  });

  test("an error thrown by onDelta ends the call with that error, without retrying", async () => {
    fake.handler = () => ({ text: "some text here" });
    const boom = new Error("subscriber went away");
    const req = request({
      onDelta: () => {
        throw boom;
      },
    });
    await assert.rejects(backend.chat(req), (err) => err === boom);
    assert.equal(fake.requests.length, 1);
  });

  test("a stream that ends cleanly but without a finish reason was cut short", async () => {
    fake.handler = () => ({ text: "", breakAfterContent: 0, breakBy: "end" });
    await failure(backend.chat(streaming().req), "server_error");
    assert.equal(fake.requests.length, 4, "retried like any server error");

    fake.resetStats();
    fake.handler = () => ({ text: "half an answer", breakAfterContent: 2, breakBy: "end" });
    const { req, deltas } = streaming();
    const err = await failure(backend.chat(req), "server_error");
    assert.match(err.message, /ended the stream early/);
    assert.equal(err.partialText, "half an ");
    assert.equal(deltas.join(""), "half an ");
    assert.equal(fake.requests.length, 1);
  });
});
