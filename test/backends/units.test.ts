import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { retryAfterMs } from "../../src/backends/errors.js";
import { serverRoot } from "../../src/backends/openaiBackend.js";
import { stripReasoning } from "../../src/backends/reasoning.js";
import { backoffDelay, DEFAULT_RETRY_POLICY, withRetries } from "../../src/backends/retry.js";
import { BackendError } from "../../src/backends/types.js";

describe("stripReasoning", () => {
  test("leaves text without think tags untouched", () => {
    assert.equal(stripReasoning("  plain answer \n"), "  plain answer \n");
  });
  test("removes complete blocks anywhere", () => {
    assert.equal(stripReasoning("<think>a</think>\n\nHello <think>b</think>world"), "Hello world");
  });
  test("drops an unterminated leading block entirely", () => {
    assert.equal(stripReasoning("\n<think>still thinking when the tokens ran out"), "");
  });
  test("drops everything up to a lone closing tag (template opened the block)", () => {
    assert.equal(stripReasoning("reasoning here</think>\n\nAnswer"), "Answer");
  });
});

describe("serverRoot", () => {
  test("strips trailing slashes and /v1", () => {
    for (const url of [
      "http://h:8080",
      "http://h:8080/",
      "http://h:8080/v1",
      "http://h:8080/v1/",
      " http://h:8080//v1// ",
    ]) {
      assert.equal(serverRoot(url), "http://h:8080");
    }
    assert.equal(serverRoot("https://proxy.example/llm/v1"), "https://proxy.example/llm");
  });
});

describe("retryAfterMs", () => {
  test("reads seconds, HTTP dates and retry-after-ms", () => {
    assert.equal(retryAfterMs(new Headers({ "retry-after": "2" })), 2000);
    assert.equal(retryAfterMs(new Headers({ "retry-after-ms": "150", "retry-after": "9" })), 150);
    const now = Date.parse("2025-01-01T00:00:00Z");
    assert.equal(retryAfterMs(new Headers({ "retry-after": "Wed, 01 Jan 2025 00:00:03 GMT" }), now), 3000);
    assert.equal(retryAfterMs(new Headers({ "retry-after": "soon" })), undefined);
    assert.equal(retryAfterMs(new Headers()), undefined);
  });
});

describe("backoffDelay", () => {
  test("doubles from 200 ms with jitter and caps at 2 s", () => {
    const p = DEFAULT_RETRY_POLICY;
    assert.equal(
      backoffDelay(1, p, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(1, p, () => 1),
      200,
    );
    assert.equal(
      backoffDelay(3, p, () => 1),
      800,
    );
    assert.equal(
      backoffDelay(10, p, () => 1),
      2000,
    );
    assert.equal(
      backoffDelay(10, p, () => 0),
      1000,
    );
  });
});

describe("withRetries", () => {
  test("calls sharing the caller's signal put at most one listener on it; its abort cancels them all", async () => {
    const caller = new AbortController();
    // Each attempt waits until its own signal aborts.
    const hang = (signal: AbortSignal) =>
      new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    const calls = Array.from({ length: 50 }, () =>
      withRetries(hang, {
        deadline: Date.now() + 60_000,
        now: Date.now,
        signal: caller.signal,
        policy: DEFAULT_RETRY_POLICY,
        classify: (error) => ({ error: new BackendError("server_error", String(error)) }),
      }),
    );
    const listeners = getEventListeners(caller.signal, "abort").length;
    assert.ok(listeners <= 1, `${listeners} listeners on the caller's signal for 50 calls`);
    caller.abort();
    for (const outcome of await Promise.allSettled(calls)) {
      assert.equal(outcome.status, "rejected");
      assert.equal((outcome.reason as BackendError).code, "cancelled");
    }
  });
});
