import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RedeliveryFilter } from "../../src/protocol/redelivery.js";

describe("RedeliveryFilter", () => {
  test("a request delivered again (DUP) after being taken in is a repeat", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat("s/r1", false), false);
    assert.equal(filter.isRepeat("s/r1", true), true);
  });

  test("a first delivery flagged DUP is not a repeat (its first copy never reached us)", () => {
    const filter = new RedeliveryFilter();
    assert.equal(filter.isRepeat("s/r2", true), false);
    assert.equal(filter.isRepeat("s/r2", true), true);
  });

  test("without the DUP flag a reused request id is a new request", () => {
    const filter = new RedeliveryFilter();
    filter.isRepeat("s/r3", false);
    assert.equal(filter.isRepeat("s/r3", false), false);
  });

  test("only the most recent requests are remembered", () => {
    const filter = new RedeliveryFilter(2);
    filter.isRepeat("a", false);
    filter.isRepeat("b", false);
    filter.isRepeat("c", false);
    assert.equal(filter.isRepeat("a", true), false, "forgotten");
    assert.equal(filter.isRepeat("c", true), true);
  });
});
