import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { DEFAULT_ID, makeContext, parse, rejectionOf, turnOf } from "./helpers.js";

describe("parseInbound: maze/state snapshots", () => {
  test("the snapshot becomes the canonical user turn; control fields are read", () => {
    const turn = turnOf(
      parse("maze/state", {
        sessionId: "m1",
        message: "ignored",
        player_pos: { x: 1, y: 2 },
        exit_pos: [9, 9],
        germs: [{ x: 3, y: 4 }],
        oxygenPellets: [[5, 6], "bad"],
        oxygenCollected: 1,
        temperature: "0.3",
        prompt_template: { content: "Maze prompt" },
        replyTopic: "maze/hint/m1/c/r",
        clientId: "c",
        requestId: "r",
      }),
    );
    assert.deepEqual(turn, {
      project: "maze",
      sessionId: "m1",
      kind: "state",
      content:
        '{"player_pos": [1, 2], "exit_pos": [9, 9], "visible_map": [], "germs": [[3, 4]], "oxygen": [[5, 6]], "oxygen_collected": 1}',
      sampling: { temperature: 0.3 },
      systemPrompt: "Maze prompt",
      reply: { topic: "maze/hint/m1/c/r", format: "maze" },
      clientId: "c",
      requestId: "r",
    });
  });

  test("no sessionId: fresh default id on maze/hint", () => {
    const turn = turnOf(parse("maze/state", { player_pos: [0, 1] }));
    assert.match(turn.sessionId, DEFAULT_ID);
    assert.deepEqual(turn.reply, { topic: `maze/hint/${turn.sessionId}`, format: "maze" });
  });

  test("a replyTopic on the chat base is refused for snapshots", () => {
    const ctx = makeContext();
    const turn = turnOf(
      parse("maze/state", { sessionId: "m1", replyTopic: "maze/assistant_response/m1" }, ctx),
    );
    assert.equal(turn.reply.topic, "maze/hint/m1");
    assert.equal(ctx.warnings.length, 1);
  });

  test("a payload that is not a JSON object is refused on maze/hint/<fresh id>", () => {
    for (const payload of ["not json", "[1]", '"str"', "", "42"]) {
      const r = rejectionOf(parse("maze/state", payload));
      assert.equal(r.error.code, "invalid_request", payload);
      assert.match(r.error.message, /maze state must be a JSON object/);
      assert.match(r.sessionId ?? "", DEFAULT_ID);
      assert.deepEqual(r.reply, { topic: `maze/hint/${r.sessionId}`, format: "maze" });
    }
  });

  test("invalid control fields are refused on the maze reply target", () => {
    const r = rejectionOf(parse("maze/state", { sessionId: "m1", maxTokens: "many" }));
    assert.match(r.error.message, /maxTokens must be a number/);
    assert.deepEqual(r.reply, { topic: "maze/hint/m1", format: "maze" });
  });

  test("an oversized snapshot is refused as JSON on its session's maze/hint topic", () => {
    const ctx = makeContext({ limits: { maxPayloadBytes: 100, maxMessageChars: 50 } });
    const r = rejectionOf(parse("maze/state", { sessionId: "m1", visible_map: ["#".repeat(200)] }, ctx));
    assert.equal(r.error.code, "payload_too_large");
    assert.deepEqual(r.reply, { topic: "maze/hint/m1", format: "maze" });
  });

  test("absurd nesting is refused, not thrown", () => {
    const deep = "[".repeat(5000) + "]".repeat(5000);
    const ctx = makeContext({ limits: { maxPayloadBytes: 100_000, maxMessageChars: 50 } });
    const r = rejectionOf(parse("maze/state", `{"sessionId": "m1", "visible_map": ${deep}}`, ctx));
    assert.equal(r.error.code, "invalid_request");
    assert.match(r.error.message, /nested/);
  });

  test("maze chat turns reply on maze/assistant_response as text", () => {
    const turn = turnOf(parse("maze/user_input", { sessionId: "m1", message: "help" }));
    assert.deepEqual(turn.reply, { topic: "maze/assistant_response/m1", format: "text" });
    assert.equal(turn.kind, "chat");
  });
});
