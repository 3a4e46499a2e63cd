import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LlmqttError } from "../../src/client/errors.js";
import { readChunk, readReply, StreamAssembler, type StreamChunk } from "../../src/client/replies.js";

const delta = (seq: number, text: string): StreamChunk => ({ seq, delta: text });
const texts = (chunks: StreamChunk[]) => chunks.map((c) => ("delta" in c ? c.delta : "<end>"));

describe("StreamAssembler", () => {
  test("hands chunks on in seq order, holding early ones back", () => {
    const assembler = new StreamAssembler();
    assert.deepEqual(texts(assembler.accept(delta(2, "c"))), []);
    assert.deepEqual(texts(assembler.accept(delta(1, "b"))), []);
    assert.deepEqual(texts(assembler.accept(delta(0, "a"))), ["a", "b", "c"]);
    assert.deepEqual(texts(assembler.accept(delta(3, "d"))), ["d"]);
  });

  test("drops repeats, whether already handed on or still waiting", () => {
    const assembler = new StreamAssembler();
    assert.deepEqual(texts(assembler.accept(delta(0, "a"))), ["a"]);
    assert.deepEqual(texts(assembler.accept(delta(0, "a"))), []);
    assert.deepEqual(texts(assembler.accept(delta(2, "c"))), []);
    assert.deepEqual(texts(assembler.accept(delta(2, "c"))), []);
    assert.deepEqual(texts(assembler.accept(delta(1, "b"))), ["b", "c"]);
  });

  test("ends at the done chunk, once every chunk before it is in", () => {
    const assembler = new StreamAssembler();
    const done: StreamChunk = { seq: 2, done: true, reply: { text: "ab" } };
    assert.deepEqual(texts(assembler.accept(done)), []);
    assert.deepEqual(texts(assembler.accept(delta(1, "b"))), []);
    assert.deepEqual(texts(assembler.accept(delta(0, "a"))), ["a", "b", "<end>"]);
    assert.deepEqual(texts(assembler.accept(delta(3, "late"))), []);
  });
});

describe("reading replies", () => {
  test("the JSON envelope gives text, finish reason and usage", () => {
    const payload = JSON.stringify({
      response: "hi",
      sessionId: "s",
      requestId: "r",
      clientId: null,
      finishReason: "stop",
      usage: { promptTokens: 3, completionTokens: 1 },
      latencyMs: 5,
    });
    assert.deepEqual(readReply(payload, "r"), {
      text: "hi",
      finishReason: "stop",
      usage: { promptTokens: 3, completionTokens: 1 },
    });
    const cached = { promptTokens: 300, completionTokens: 1, cachedTokens: 290 };
    const withCache = JSON.stringify({ response: "hi", sessionId: "s", finishReason: "stop", usage: cached });
    assert.deepEqual(readReply(withCache, "r"), { text: "hi", finishReason: "stop", usage: cached });
  });

  test("an error envelope is an LlmqttError with the protocol's code", () => {
    const payload = JSON.stringify({
      error: { code: "context_overflow", message: "too long", retryable: false },
      sessionId: "s",
      requestId: "r",
    });
    const error = readReply(payload, "r");
    assert.ok(error instanceof LlmqttError);
    assert.deepEqual(
      [error.code, error.message, error.retryable, error.requestId],
      ["context_overflow", "too long", false, "r"],
    );
  });

  test("a gateway without the envelope: raw text, `Error: ` text, maze errors, the original's overload", () => {
    assert.deepEqual(readReply("plain answer", "r"), { text: "plain answer" });
    assert.deepEqual(readReply('{"hint": "go left"}', "r"), { text: '{"hint": "go left"}' });
    const cases: [string, string, string][] = [
      ["Error: The model server timed out.", "unknown", "The model server timed out."],
      ['{"error": "no model"}', "unknown", "no model"],
      [
        "Server is overloaded. Please try again in a moment.",
        "overloaded",
        "Server is overloaded. Please try again in a moment.",
      ],
      [
        "Error: Rate limit exceeded. Please slow down your requests.",
        "rate_limited",
        "Rate limit exceeded. Please slow down your requests.",
      ],
    ];
    for (const [payload, code, message] of cases) {
      const error = readReply(payload, "r");
      assert.ok(error instanceof LlmqttError, payload);
      assert.deepEqual([error.code, error.message], [code, message]);
    }
  });

  test("stream chunks: deltas, the end with the reply or the error; anything else is no chunk", () => {
    assert.deepEqual(readChunk('{"requestId":"r","seq":0,"delta":"he"}', "r"), { seq: 0, delta: "he" });
    assert.deepEqual(
      readChunk(
        '{"requestId":"r","seq":1,"done":true,"response":"he","finishReason":"stop","usage":null}',
        "r",
      ),
      { seq: 1, done: true, reply: { text: "he", finishReason: "stop", usage: undefined } },
    );
    const failed = readChunk(
      '{"requestId":"r","seq":0,"done":true,"error":{"code":"timeout","message":"slow","retryable":true}}',
      "r",
    );
    assert.ok(failed && "error" in failed);
    assert.deepEqual([failed.error.code, failed.error.retryable], ["timeout", true]);
    for (const junk of [
      "",
      "null",
      "[]",
      '{"seq":-1,"delta":"x"}',
      '{"seq":1.5,"delta":"x"}',
      '{"seq":0}',
      '{"seq":0,"done":true}',
    ]) {
      assert.equal(readChunk(junk, "r"), undefined, junk);
    }
  });
});
