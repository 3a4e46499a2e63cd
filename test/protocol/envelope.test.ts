import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { formatAnswer, formatFailure, gatewayError, replyProperties } from "../../src/protocol/outbound.js";
import type { ReplyTarget, TurnRequest } from "../../src/protocol/types.js";
import { parse, rejectionOf } from "./helpers.js";

const TEXT: ReplyTarget = { topic: "general/assistant_response/s1", format: "text" };
const MAZE: ReplyTarget = { topic: "maze/hint/m1", format: "maze" };
const JSON_TARGET: ReplyTarget = { topic: "general/assistant_response/s1", format: "json" };

function turn(reply: ReplyTarget, extra: Partial<TurnRequest> = {}): TurnRequest {
  return { project: "general", sessionId: "s1", kind: "chat", content: "hi", sampling: {}, reply, ...extra };
}

const ANSWER = {
  text: 'Hello "there"\n',
  finishReason: "stop",
  usage: { promptTokens: 12, completionTokens: 3 },
  latencyMs: 250,
};

describe("formatAnswer", () => {
  test("text and maze targets get the raw text (part A)", () => {
    assert.equal(formatAnswer(turn(TEXT, { requestId: "r" }), ANSWER), ANSWER.text);
    assert.equal(formatAnswer(turn(MAZE), { ...ANSWER, text: '{"hint": "go"}' }), '{"hint": "go"}');
    const raw = "  raw text, whitespace kept\n";
    assert.equal(formatAnswer(turn(TEXT), { ...ANSWER, text: raw }), raw);
  });

  test("json targets get the envelope, keys in protocol order", () => {
    assert.equal(
      formatAnswer(turn(JSON_TARGET, { requestId: "r1", clientId: "c1" }), ANSWER),
      '{"response":"Hello \\"there\\"\\n","sessionId":"s1","requestId":"r1","clientId":"c1",' +
        '"finishReason":"stop","usage":{"promptTokens":12,"completionTokens":3},"latencyMs":250}',
    );
  });

  test("absent ids and usage are null; only the two usage counts are written", () => {
    const usage = { promptTokens: 1, completionTokens: 2, totalTokens: 3 };
    assert.deepEqual(JSON.parse(formatAnswer(turn(JSON_TARGET), { ...ANSWER, usage, latencyMs: 7.6 })), {
      response: ANSWER.text,
      sessionId: "s1",
      requestId: null,
      clientId: null,
      finishReason: "stop",
      usage: { promptTokens: 1, completionTokens: 2 },
      latencyMs: 8,
    });
    const { usage: _, ...noUsage } = ANSWER;
    assert.equal(JSON.parse(formatAnswer(turn(JSON_TARGET), noUsage)).usage, null);
  });

  test("cachedTokens is written when the server reported what it reused", () => {
    const usage = { promptTokens: 100, completionTokens: 2, cachedTokens: 0 };
    const out = JSON.parse(formatAnswer(turn(JSON_TARGET), { ...ANSWER, usage }));
    assert.deepEqual(out.usage, { promptTokens: 100, completionTokens: 2, cachedTokens: 0 });
  });

  test("a maze turn in json gets its action JSON as the response string", () => {
    const mazeJson: ReplyTarget = { topic: "maze/hint/m1", format: "json" };
    const out = JSON.parse(formatAnswer(turn(mazeJson), { ...ANSWER, text: '{"hint": "left"}' }));
    assert.equal(out.response, '{"hint": "left"}');
  });
});

describe("formatFailure", () => {
  const error = gatewayError("rate_limited");

  test("text and maze targets: part A output", () => {
    assert.equal(
      formatFailure(TEXT, error, { sessionId: "s1" }),
      "Error: Rate limit exceeded. Please slow down your requests.",
    );
    assert.equal(
      formatFailure(MAZE, error, { sessionId: "m1", requestId: "r" }),
      '{"error":"Rate limit exceeded. Please slow down your requests."}',
    );
  });

  test("json targets get the error envelope", () => {
    assert.equal(
      formatFailure(JSON_TARGET, gatewayError("invalid_request", "bad"), {
        sessionId: "s1",
        requestId: "r1",
      }),
      '{"error":{"code":"invalid_request","message":"Invalid request: bad","retryable":false},' +
        '"sessionId":"s1","requestId":"r1"}',
    );
    assert.equal(
      formatFailure(JSON_TARGET, error, {}),
      '{"error":{"code":"rate_limited","message":"Rate limit exceeded. Please slow down your requests.",' +
        '"retryable":true},"sessionId":null,"requestId":null}',
    );
  });

  test("a rejected intent supplies its own ids", () => {
    const r = rejectionOf(
      parse("general/user_input", { sessionId: "s1", responseFormat: "json", requestId: 5 }),
    );
    assert.ok(r.reply);
    assert.deepEqual(JSON.parse(formatFailure(r.reply, r.error, r)), {
      error: {
        code: "invalid_request",
        message: "Invalid request: message must be a non-empty string",
        retryable: false,
      },
      sessionId: "s1",
      requestId: "5",
    });
  });
});

describe("replyProperties", () => {
  const corr = Buffer.from("abc");

  test("correlation data and every user property", () => {
    const props = replyProperties(
      { ...TEXT, correlationData: corr },
      { requestId: "r1", sessionId: "s1" },
      "ok",
    );
    assert.deepEqual(props, {
      correlationData: corr,
      userProperties: { requestId: "r1", sessionId: "s1", status: "ok" },
    });
    assert.deepEqual(Object.keys(props.userProperties), ["requestId", "sessionId", "status"]);
  });

  test("absent values are left out, never undefined", () => {
    const props = replyProperties(TEXT, { sessionId: "s1" }, "error");
    assert.deepEqual(props, { userProperties: { sessionId: "s1", status: "error" } });
    assert.equal("correlationData" in props, false);
    assert.equal("requestId" in props.userProperties, false);
    const fromTurn = turn(TEXT);
    const props2 = replyProperties(fromTurn.reply, fromTurn, "ok");
    assert.ok(Object.values(props2.userProperties).every((v) => typeof v === "string"));
  });
});
