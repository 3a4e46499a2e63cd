import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { retryAfterMs } from "../../src/backends/errors.js";
import { serverRoot } from "../../src/backends/openaiBackend.js";
import { stripReasoning } from "../../src/backends/reasoning.js";
import { backoffDelay, DEFAULT_RETRY_POLICY, withRetries } from "../../src/backends/retry.js";
import { BackendError } from "../../src/backends/types.js";
import { readUsage } from "../../src/backends/usage.js";

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
  const classify = (error: unknown) => ({ error: new BackendError("unreachable", String(error)) });
  const options = { now: Date.now, classify, policy: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 } };

  test("retries a retryable failure and returns the first success", async () => {
    let attempts = 0;
    const retried: number[] = [];
    const result = await withRetries(
      async () => {
        if (++attempts < 3) throw new Error("refused");
        return "answer";
      },
      { ...options, deadline: Date.now() + 60_000, onRetry: (_error, attempt) => retried.push(attempt) },
    );
    assert.equal(result, "answer");
    assert.deepEqual(retried, [1, 2]);
  });

  test("an attempt that fails once the caller has aborted ends the call as cancelled, not retried", async () => {
    const caller = new AbortController();
    let attempts = 0;
    const call = withRetries(
      async () => {
        attempts++;
        caller.abort();
        throw new Error("socket destroyed");
      },
      { ...options, deadline: Date.now() + 60_000, signal: caller.signal },
    );
    await assert.rejects(call, { code: "cancelled" });
    assert.equal(attempts, 1);
  });

  test("an attempt that fails at the deadline ends the call as timeout, and none starts after it", async () => {
    let attempts = 0;
    let clock = 1000;
    const call = withRetries(
      async () => {
        attempts++;
        clock = 2000;
        throw new Error("socket destroyed");
      },
      { ...options, now: () => clock, deadline: 2000 },
    );
    await assert.rejects(call, { code: "timeout" });
    assert.equal(attempts, 1);
    await assert.rejects(
      withRetries(async () => assert.fail("started past the deadline"), {
        ...options,
        now: () => 2000,
        deadline: 2000,
      }),
      { code: "timeout" },
    );
  });

  test("an attempt that throws instead of rejecting is a failed attempt like any other, never a throw from withRetries", async () => {
    let attempts = 0;
    const failing = (): Promise<string> => {
      attempts++;
      throw new Error("refused");
    };
    const call = withRetries(failing, { ...options, deadline: Date.now() + 60_000 });
    assert.ok(call instanceof Promise);
    await assert.rejects(call, { code: "unreachable", message: "Error: refused" });
    assert.equal(attempts, options.policy.maxAttempts);
  });

  test("no retry is waited for past the deadline: the last failure stands", async () => {
    const slow = { ...options, policy: { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 } };
    await assert.rejects(
      withRetries(async () => Promise.reject(new Error("refused")), { ...slow, deadline: Date.now() + 1000 }),
      { code: "unreachable" },
    );
  });
});

describe("readUsage", () => {
  const usage = { prompt_tokens: 77, completion_tokens: 8, total_tokens: 85 };

  test("reads OpenAI's usage, with the cached count when there is one", () => {
    assert.deepEqual(readUsage(usage, undefined), { promptTokens: 77, completionTokens: 8 });
    assert.deepEqual(readUsage({ ...usage, prompt_tokens_details: { cached_tokens: 76 } }, undefined), {
      promptTokens: 77,
      completionTokens: 8,
      cachedTokens: 76,
    });
    assert.equal(readUsage(null, undefined), undefined);
  });

  test("takes llama-server's timings.cache_n when usage lacks the cached count", () => {
    const timings = { prompt_n: 56, cache_n: 21, predicted_n: 8, prompt_ms: 42.7 };
    assert.deepEqual(readUsage(usage, timings), { promptTokens: 77, completionTokens: 8, cachedTokens: 21 });
    // usage's own cached count wins over timings.
    const both = readUsage({ ...usage, prompt_tokens_details: { cached_tokens: 76 } }, timings);
    assert.equal(both?.cachedTokens, 76);
  });

  test("timings alone give all three counts", () => {
    assert.deepEqual(readUsage(undefined, { prompt_n: 1, cache_n: 76, predicted_n: 4 }), {
      promptTokens: 77,
      completionTokens: 4,
      cachedTokens: 76,
    });
    assert.equal(readUsage(undefined, { prompt_n: 1, predicted_n: 4 }), undefined);
  });

  test("ignores counts that are not whole numbers and caps the cached count at the prompt", () => {
    assert.equal(readUsage(usage, { cache_n: "21" })?.cachedTokens, undefined);
    assert.equal(readUsage(usage, { cache_n: -1 })?.cachedTokens, undefined);
    assert.equal(readUsage(usage, { cache_n: 2.5 })?.cachedTokens, undefined);
    assert.equal(readUsage(usage, { cache_n: 500 })?.cachedTokens, 77);
    const broken = { completion_tokens: 8 } as unknown as typeof usage;
    assert.equal(readUsage(broken, undefined), undefined);
    assert.deepEqual(readUsage(broken, { prompt_n: 7, cache_n: 70, predicted_n: 8 }), {
      promptTokens: 77,
      completionTokens: 8,
      cachedTokens: 70,
    });
  });
});
