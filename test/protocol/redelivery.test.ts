import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RedeliveryFilter } from "../../src/protocol/redelivery.js";

const payload = (text: string) => Buffer.from(text);

describe("RedeliveryFilter", () => {
  test("a message delivered again (DUP) after being taken in is a repeat", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat("general/user_input", payload("hi"), false), false);
    assert.equal(filter.isRepeat("general/user_input", payload("hi"), true), true);
  });

  test("the same payload on another topic is another message", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat("general/user_input", payload("hi"), false);
    assert.equal(filter.isRepeat("maze/user_input", payload("hi"), true), false);
  });

  test("a first delivery flagged DUP is not a repeat (its first copy never reached us)", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat("t", payload("a"), true), false);
    assert.equal(filter.isRepeat("t", payload("a"), true), true);
  });

  test("without the DUP flag a repeated payload is a new message", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat("t", payload("yes"), false);
    assert.equal(filter.isRepeat("t", payload("yes"), false), false);
  });

  test("only the most recent messages are remembered", () => {
    const filter = new RedeliveryFilter(2);
    for (const text of ["a", "b", "c"]) filter.isRepeat("t", payload(text), false);
    assert.equal(filter.isRepeat("t", payload("a"), true), false, "forgotten");
    assert.equal(filter.isRepeat("t", payload("c"), true), true);
  });

  test("where the topic ends is part of the message", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat("ab", payload("c"), false);
    assert.equal(filter.isRepeat("a", payload("bc"), true), false);
  });

  test("ten thousand remembered look-alike messages are never taken for one another", () => {
    const filter = new RedeliveryFilter(10_000);
    const message = (n: number) => payload(JSON.stringify({ message: `turn ${n}`, sessionId: "s" }));
    for (let n = 0; n < 10_000; n++) filter.isRepeat("general/user_input", message(n), false);
    for (let n = 10_000; n < 20_000; n++) {
      assert.equal(filter.isRepeat("general/user_input", message(n), true), false, `turn ${n}`);
    }
    assert.equal(filter.isRepeat("general/user_input", message(19_999), true), true);
  });
});
