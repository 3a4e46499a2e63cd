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
});
