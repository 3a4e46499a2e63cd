import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { noticeTarget } from "../../src/protocol/commands.js";
import { makeContext, parse, rejectionOf } from "./helpers.js";

describe("parseInbound: template (A5)", () => {
  test("global template with reset defaulting to true", () => {
    assert.deepEqual(parse("prompt_portal/template", { template: "  New prompt " }), {
      type: "template",
      project: "prompt_portal",
      prompt: "New prompt",
      reset: true,
    });
  });

  test("prompt precedence: template, system_prompt, prompt_template, systemPrompt", () => {
    const prompt = (payload: object) => {
      const intent = parse("general/template", payload);
      assert.equal(intent?.type, "template", JSON.stringify(intent));
      return (intent as { prompt: string }).prompt;
    };
    assert.equal(prompt({ template: "T", system_prompt: "S", prompt_template: "P", systemPrompt: "C" }), "T");
    assert.equal(prompt({ template: "  ", system_prompt: "S", prompt_template: "P" }), "S");
    assert.equal(prompt({ template: null, prompt_template: { content: " PC " }, systemPrompt: "C" }), "PC");
    assert.equal(prompt({ prompt_template: { template: "PT" } }), "PT");
    assert.equal(prompt({ prompt_template: { content: "" }, systemPrompt: "C" }), "C");
    assert.equal(prompt({ template: { content: "TC" } }), "TC");
    assert.equal(prompt({ template: 5, systemPrompt: "C" }), "C");
  });

  test("per-session by payload (session_id, then sessionId) or by topic suffix", () => {
    assert.deepEqual(parse("maze/template/topic-sid", { session_id: "p1", sessionId: "p2", template: "x" }), {
      type: "template",
      project: "maze",
      sessionId: "p1",
      prompt: "x",
      reset: true,
    });
    const bySessionId = parse("maze/template", { session_id: " ", sessionId: 7, template: "x" });
    assert.equal((bySessionId as { sessionId?: string }).sessionId, "7");
    const byTopic = parse("maze/template/t/1", { template: "x" });
    assert.equal((byTopic as { sessionId?: string }).sessionId, "t_1");
  });

  test("reset false, as a boolean or a string", () => {
    for (const reset of [false, "false", "FALSE", 0]) {
      const intent = parse("general/template/s", { template: "x", reset });
      assert.equal((intent as { reset: boolean }).reset, false, String(reset));
    }
    assert.equal(
      (parse("general/template", { template: "x", reset: "true" }) as { reset: boolean }).reset,
      true,
    );
    const ctx = makeContext();
    assert.equal(
      (parse("general/template", { template: "x", reset: "whatever" }, ctx) as { reset: boolean }).reset,
      true,
    );
    assert.equal(ctx.warnings.length, 1);
  });

  test("no prompt is refused; maze per-session gets a reply on maze/hint", () => {
    const r = rejectionOf(parse("maze/template/m1", ""));
    assert.equal(r.error.code, "invalid_request");
    assert.match(r.error.message, /no prompt/);
    assert.equal(r.sessionId, "m1");
    assert.deepEqual(r.reply, { topic: "maze/hint/m1", format: "maze" });
    const global = rejectionOf(parse("maze/template", { reset: false }));
    assert.equal(global.reply, undefined);
    const other = rejectionOf(parse("general/template/g1", {}));
    assert.equal(other.reply, undefined);
    assert.equal(other.sessionId, "g1");
  });

  test("non-object or non-JSON payloads are refused", () => {
    for (const payload of ["just text", "[1]", '"prompt"']) {
      const r = rejectionOf(parse("maze/template/m1", payload));
      assert.match(r.error.message, /template payload must be a JSON object/);
      assert.deepEqual(r.reply, { topic: "maze/hint/m1", format: "maze" });
    }
  });

  test("an object sessionId is refused", () => {
    const r = rejectionOf(parse("maze/template", { sessionId: ["x"], template: "x" }));
    assert.match(r.error.message, /sessionId must be a string or a number/);
  });

  test("oversized payloads are refused, answered by the topic's session", () => {
    const ctx = makeContext({ limits: { maxPayloadBytes: 10, maxMessageChars: 50 } });
    const r = rejectionOf(parse("maze/template/m1", { template: "a long prompt" }, ctx));
    assert.equal(r.error.code, "payload_too_large");
    assert.deepEqual(r.reply, { topic: "maze/hint/m1", format: "maze" });
  });
});

describe("parseInbound: clear_history and delete_session (A6)", () => {
  test("empty payload on the bare topic means all sessions", () => {
    assert.deepEqual(parse("maze/clear_history", ""), { type: "clear_history", project: "maze" });
    assert.deepEqual(parse("general/delete_session", ""), { type: "delete_session", project: "general" });
  });

  test("target from session_id, sessionId or target, else the topic suffix", () => {
    assert.deepEqual(parse("maze/clear_history/t", { session_id: "a", sessionId: "b", target: "c" }), {
      type: "clear_history",
      project: "maze",
      sessionId: "a",
    });
    assert.deepEqual(parse("maze/clear_history/t", { sessionId: 12 }), {
      type: "clear_history",
      project: "maze",
      sessionId: "12",
    });
    assert.deepEqual(parse("prompt_portal/delete_session/t", { target: "c" }), {
      type: "delete_session",
      project: "prompt_portal",
      sessionId: "c",
    });
    assert.deepEqual(parse("prompt_portal/delete_session/owo-123", ""), {
      type: "delete_session",
      project: "prompt_portal",
      sessionId: "owo-123",
    });
  });

  test("all, in any case, means every session", () => {
    assert.deepEqual(parse("maze/clear_history/s1", { target: "ALL" }), {
      type: "clear_history",
      project: "maze",
    });
    assert.deepEqual(parse("maze/delete_session/All", ""), { type: "delete_session", project: "maze" });
  });

  test("non-JSON and non-object payloads are treated as {}", () => {
    assert.deepEqual(parse("maze/clear_history/s1", "please"), {
      type: "clear_history",
      project: "maze",
      sessionId: "s1",
    });
    assert.deepEqual(parse("maze/clear_history/s1", "[1,2]"), {
      type: "clear_history",
      project: "maze",
      sessionId: "s1",
    });
  });

  test("an object target is refused rather than widened to all sessions", () => {
    const r = rejectionOf(parse("maze/delete_session", { sessionId: { id: "x" } }));
    assert.equal(r.error.code, "invalid_request");
    assert.match(r.error.message, /sessionId must be a string or a number/);
  });

  test("oversized payloads are refused", () => {
    const ctx = makeContext({ limits: { maxPayloadBytes: 5, maxMessageChars: 50 } });
    const r = rejectionOf(parse("maze/clear_history/s1", { sessionId: "other" }, ctx));
    assert.equal(r.error.code, "payload_too_large");
    assert.equal(r.sessionId, "s1");
    assert.deepEqual(r.reply, { topic: "maze/hint/s1", format: "maze" });
  });
});

describe("parseInbound: cancel (C9)", () => {
  test("names a session and a request, ids as the turns carry them", () => {
    assert.deepEqual(parse("general/cancel", { sessionId: " s/1 ", requestId: "r1" }), {
      type: "cancel",
      project: "general",
      sessionId: "s_1",
      requestId: "r1",
    });
    assert.deepEqual(parse("maze/cancel", { sessionId: 42, requestId: 7 }), {
      type: "cancel",
      project: "maze",
      sessionId: "42",
      requestId: "7",
    });
  });

  test("a cancel without both ids, or not a JSON object, is refused with no reply topic", () => {
    for (const payload of [
      { requestId: "r1" },
      { sessionId: "  ", requestId: "r1" },
      { sessionId: ["s"], requestId: "r1" },
      { sessionId: "s1" },
      { sessionId: "s1", requestId: { id: 1 } },
      "cancel it",
      "[1]",
      "",
    ]) {
      const r = rejectionOf(parse("general/cancel", payload));
      assert.equal(r.error.code, "invalid_request", JSON.stringify(payload));
      assert.match(r.error.message, /cancel/);
      assert.equal(r.reply, undefined);
    }
    const ctx = makeContext({ limits: { maxPayloadBytes: 5, maxMessageChars: 50 } });
    const big = rejectionOf(parse("general/cancel", { sessionId: "s1", requestId: "r1" }, ctx));
    assert.equal(big.error.code, "payload_too_large");
  });
});

describe("noticeTarget", () => {
  test("only maze sessions have a notice topic", () => {
    assert.deepEqual(noticeTarget("maze", "m1"), { topic: "maze/hint/m1", format: "maze" });
    assert.equal(noticeTarget("maze", undefined), undefined);
    assert.equal(noticeTarget("general", "g1"), undefined);
  });
});
