import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RedeliveryFilter } from "../../src/protocol/redelivery.js";
import type { InboundIntent } from "../../src/protocol/types.js";
import { parse } from "./helpers.js";

const CHAT = "general/user_input";

/** A message as the dispatcher hands it over: topic, bytes and what they were parsed into. */
function message(topic: string, payload: string | object): [string, Buffer, InboundIntent] {
  const bytes = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
  const intent = parse(topic, bytes);
  assert.ok(intent);
  return [topic, bytes, intent];
}

describe("RedeliveryFilter", () => {
  test("a message delivered again (DUP) after being taken in is a repeat", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat(...message(CHAT, "hi"), false), false);
    assert.equal(filter.isRepeat(...message(CHAT, "hi"), true), true);
  });

  test("the same payload on another topic is another message", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat(...message(CHAT, "hi"), false);
    assert.equal(filter.isRepeat(...message("maze/user_input", "hi"), true), false);
    const request = { sessionId: "s", message: "hi", requestId: "r1" };
    filter.isRepeat(...message(CHAT, request), false);
    assert.equal(filter.isRepeat(...message("maze/user_input", request), true), false);
  });

  test("a first delivery flagged DUP is not a repeat (its first copy never reached us)", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat(...message(CHAT, "a"), true), false);
    assert.equal(filter.isRepeat(...message(CHAT, "a"), true), true);
  });

  test("without the DUP flag a repeated message is a new one", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat(...message(CHAT, "yes"), false);
    assert.equal(filter.isRepeat(...message(CHAT, "yes"), false), false);
    const request = { sessionId: "s", message: "yes", requestId: "r1" };
    filter.isRepeat(...message(CHAT, request), false);
    assert.equal(filter.isRepeat(...message(CHAT, request), false), false);
  });

  test("a request with a request id is known by it and its client id", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat(
      ...message(CHAT, { sessionId: "s", message: "hi", clientId: "a", requestId: "1" }),
      false,
    );
    const again = { sessionId: "s", message: "hi", clientId: "a", requestId: "1" };
    assert.equal(filter.isRepeat(...message(CHAT, again), true), true);
    const otherClient = { sessionId: "s", message: "hi", clientId: "b", requestId: "1" };
    assert.equal(filter.isRepeat(...message(CHAT, otherClient), true), false);
    const otherRequest = { sessionId: "s", message: "hi", clientId: "a", requestId: "2" };
    assert.equal(filter.isRepeat(...message(CHAT, otherRequest), true), false);
    // A refused request (here: a blank message) names itself too.
    filter.isRepeat(...message(CHAT, { sessionId: "s", message: " ", requestId: "bad" }), false);
    assert.equal(
      filter.isRepeat(...message(CHAT, { sessionId: "s", message: " ", requestId: "bad" }), true),
      true,
    );
  });

  test("commands, which carry no request id, are known by their bytes", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat(...message("general/clear_history/s1", ""), false);
    assert.equal(filter.isRepeat(...message("general/clear_history/s1", ""), true), true);
    assert.equal(filter.isRepeat(...message("general/clear_history/s2", ""), true), false);
  });

  test("only the most recent messages are remembered", () => {
    const filter = new RedeliveryFilter(2);
    for (const text of ["a", "b", "c"]) filter.isRepeat(...message(CHAT, text), false);
    assert.equal(filter.isRepeat(...message(CHAT, "a"), true), false, "forgotten");
    assert.equal(filter.isRepeat(...message(CHAT, "c"), true), true);
  });

  test("where the topic ends is part of the message", () => {
    const filter = new RedeliveryFilter();
    const intent = { type: "clear_history", project: "general" } as const;
    filter.isRepeat("general/clear_history/ab", Buffer.from("c"), intent, false);
    assert.equal(filter.isRepeat("general/clear_history/a", Buffer.from("bc"), intent, true), false);
  });

  test("ten thousand remembered look-alike messages are never taken for one another", () => {
    const filter = new RedeliveryFilter(10_000);
    const turn = (n: number) => message(CHAT, { message: `turn ${n}`, sessionId: "s" });
    for (let n = 0; n < 10_000; n++) filter.isRepeat(...turn(n), false);
    for (let n = 10_000; n < 20_000; n++) assert.equal(filter.isRepeat(...turn(n), true), false, `turn ${n}`);
    assert.equal(filter.isRepeat(...turn(19_999), true), true);
  });
});
