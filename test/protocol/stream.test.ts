import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { gatewayError } from "../../src/protocol/outbound.js";
import {
  formatStreamDelta,
  formatStreamDone,
  formatStreamError,
  streamTopic,
} from "../../src/protocol/stream.js";
import { parse, turnOf } from "./helpers.js";

describe("streaming chunks (C3)", () => {
  test("chunks go to <reply topic>/stream", () => {
    assert.equal(streamTopic("general/assistant_response/s1"), "general/assistant_response/s1/stream");
    const turn = turnOf(
      parse("general/user_input", {
        sessionId: "s1",
        message: "hi",
        stream: true,
        replyTopic: "general/assistant_response/s1/c/r",
      }),
    );
    assert.equal(streamTopic(turn.reply.topic), "general/assistant_response/s1/c/r/stream");
  });

  test("delta", () => {
    assert.equal(formatStreamDelta("r1", 0, "Hel"), '{"requestId":"r1","seq":0,"delta":"Hel"}');
    assert.equal(formatStreamDelta(null, 3, 'a "b"\n'), '{"requestId":null,"seq":3,"delta":"a \\"b\\"\\n"}');
    assert.equal(formatStreamDelta(undefined, 1, ""), '{"requestId":null,"seq":1,"delta":""}');
  });

  test("done", () => {
    assert.equal(
      formatStreamDone("r1", 5, {
        response: "Hello",
        finishReason: "stop",
        usage: { promptTokens: 4, completionTokens: 2 },
      }),
      '{"requestId":"r1","seq":5,"done":true,"response":"Hello","finishReason":"stop",' +
        '"usage":{"promptTokens":4,"completionTokens":2}}',
    );
    assert.equal(
      formatStreamDone("r2", 1, {
        response: "Hi",
        finishReason: "stop",
        usage: { promptTokens: 40, completionTokens: 1, cachedTokens: 39 },
      }),
      '{"requestId":"r2","seq":1,"done":true,"response":"Hi","finishReason":"stop",' +
        '"usage":{"promptTokens":40,"completionTokens":1,"cachedTokens":39}}',
    );
    assert.equal(
      formatStreamDone(null, 0, { response: "", finishReason: "length" }),
      '{"requestId":null,"seq":0,"done":true,"response":"","finishReason":"length","usage":null}',
    );
  });

  test("error", () => {
    assert.equal(
      formatStreamError("r1", 2, gatewayError("timeout")),
      '{"requestId":"r1","seq":2,"done":true,"error":{"code":"timeout",' +
        '"message":"The model server timed out before answering. Please try again.","retryable":true}}',
    );
    assert.deepEqual(JSON.parse(formatStreamError(null, 0, gatewayError("model_error", "HTTP 500"))), {
      requestId: null,
      seq: 0,
      done: true,
      error: {
        code: "model_error",
        message: "The model server could not answer this request (HTTP 500).",
        retryable: false,
      },
    });
  });
});
