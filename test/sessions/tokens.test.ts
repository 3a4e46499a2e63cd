import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ChatMessage } from "../../src/backends/types.js";
import { TokenEstimator } from "../../src/sessions/tokens.js";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

describe("TokenEstimator", () => {
  test("starts from 3.5 chars per token plus a per-message overhead", () => {
    const estimator = new TokenEstimator();
    assert.equal(estimator.estimateText("a".repeat(35)), 10);
    assert.equal(estimator.estimateText(""), 0);
    assert.equal(estimator.estimate([user("a".repeat(35)), assistant("a".repeat(7))]), 10 + 4 + 2 + 4);
  });

  test("calibrates from reported prompt tokens, smoothed", () => {
    const estimator = new TokenEstimator();
    const messages = [user("x".repeat(600)), assistant("y".repeat(100))];
    const reported = 100 + 2 * estimator.perMessageOverhead; // the server sees 7 chars per token
    estimator.observe(messages, reported);
    const afterOne = estimator.charsPerToken;
    assert.ok(afterOne > 3.5 && afterOne < 7, `moves part of the way, got ${afterOne}`);
    for (let i = 0; i < 50; i++) estimator.observe(messages, reported);
    assert.ok(Math.abs(estimator.charsPerToken - 7) < 0.01);
    assert.ok(Math.abs(estimator.estimate(messages) - reported) <= 2, "only per-message rounding is left");
  });

  test("stays within a sane range and ignores uninformative reports", () => {
    const estimator = new TokenEstimator();
    const messages = [user("x".repeat(100))];
    for (let i = 0; i < 200; i++) estimator.observe(messages, 1_000_000);
    assert.ok(estimator.charsPerToken >= 0.5 && estimator.charsPerToken < 0.5001);
    for (let i = 0; i < 200; i++) estimator.observe(messages, 5);
    assert.ok(estimator.charsPerToken <= 10 && estimator.charsPerToken > 9.999);
    const before = estimator.charsPerToken;
    estimator.observe(messages, 4); // all overhead: says nothing
    estimator.observe([user("")], 50); // no text
    estimator.observe(messages, Number.NaN);
    assert.equal(estimator.charsPerToken, before);
  });
});
