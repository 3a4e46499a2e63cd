import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { OpenAICompatibleBackend } from "../../src/backends/openaiBackend.js";
import { contextOverflow, FakeModelServer } from "../support/fakeModelServer.js";
import { closedPort, failure, request, settings, silent } from "./helpers.js";

// Retries in these tests wait a few milliseconds, not the production 200 ms × 2^n.
const fastRetry = { baseDelayMs: 5, maxDelayMs: 20 };

function backendFor(url: string, apiKey?: string): OpenAICompatibleBackend {
  return new OpenAICompatibleBackend(settings({ url, apiKey }), silent, { retry: fastRetry });
}

describe("OpenAICompatibleBackend.chat", () => {
  let fake: FakeModelServer;
  let backend: OpenAICompatibleBackend;

  before(async () => {
    fake = await FakeModelServer.start();
    backend = backendFor(fake.url);
  });
  beforeEach(() => {
    fake.resetStats();
    fake.handler = () => ({});
  });
  after(() => fake.stop());

  test("accepts the server URL with or without /v1 and trailing slashes", async () => {
    for (const url of [fake.url, `${fake.url}/`, `${fake.url}/v1`, `${fake.url}/v1/`]) {
      const result = await backendFor(url).chat(request());
      assert.equal(result.text, "reply to: hello");
    }
    assert.equal(fake.requests.length, 4);
  });

  test("sends model, messages, sampling values, thinking switch and cache_prompt", async () => {
    await backend.chat(request({ temperature: 0, topP: 0.5, maxTokens: 33, enableThinking: false }));
    await backend.chat(request({ enableThinking: true }));
    const [first, second] = fake.requests.map((r) => r.body);
    assert.equal(first.model, "default");
    assert.deepEqual(first.messages, [
      { role: "system", content: "You are terse." },
      { role: "user", content: "hello" },
    ]);
    assert.equal(first.temperature, 0);
    assert.equal(first.top_p, 0.5);
    assert.equal(first.max_tokens, 33);
    assert.deepEqual(first.chat_template_kwargs, { enable_thinking: false });
    assert.equal(first.cache_prompt, true);
    // Always a stream, so that an aborted call stops the generation (llama-server's behaviour).
    assert.equal(first.stream, true);
    assert.equal(first.tools, undefined);
    assert.deepEqual(second.chat_template_kwargs, { enable_thinking: true });
  });

  test("sends tools as functions and maps tool calls, finish reason and usage back", async () => {
    const parameters = { type: "object", properties: { x: { type: "integer" } }, required: ["x"] };
    fake.handler = () => ({
      text: "",
      toolCalls: [{ name: "break_wall", arguments: '{"x":3}' }],
      usage: { prompt_tokens: 40, completion_tokens: 7 },
    });
    const result = await backend.chat(
      request({
        tools: [{ name: "break_wall", description: "Break a wall", parameters }],
        toolChoice: "auto",
      }),
    );
    const body = fake.requests[0]?.body;
    assert.deepEqual(body.tools, [
      { type: "function", function: { name: "break_wall", description: "Break a wall", parameters } },
    ]);
    assert.equal(body.tool_choice, "auto");
    assert.deepEqual(result, {
      text: "",
      toolCalls: [{ name: "break_wall", arguments: '{"x":3}' }],
      finishReason: "tool_calls",
      usage: { promptTokens: 40, completionTokens: 7 },
    });
  });

  test("reads the prompt tokens the server reused from usage or from llama-server's timings", async () => {
    const usage = { prompt_tokens: 300, completion_tokens: 7 };
    const cachedBy = async (reportIn?: "usage" | "timings") => {
      fake.handler = () => ({ usage, cache: { cachedTokens: 280, ...(reportIn ? { reportIn } : {}) } });
      return (await backend.chat(request())).usage;
    };
    const expected = { promptTokens: 300, completionTokens: 7, cachedTokens: 280 };
    assert.deepEqual(await cachedBy(), expected);
    assert.deepEqual(await cachedBy("usage"), expected);
    assert.deepEqual(await cachedBy("timings"), expected);
    fake.handler = () => ({ usage });
    assert.deepEqual((await backend.chat(request())).usage, { promptTokens: 300, completionTokens: 7 });
  });

  test("never returns reasoning: reasoning_content is dropped and <think> blocks stripped", async () => {
    fake.handler = () => ({ text: "The exit is north.", reasoning: "secret plan" });
    assert.equal((await backend.chat(request())).text, "The exit is north.");

    fake.handler = () => ({ text: "<think>\nsecret plan\n</think>\n\nThe exit is north." });
    assert.equal((await backend.chat(request())).text, "The exit is north.");

    fake.handler = () => ({ text: "<think>secret plan that never ends", finishReason: "length" });
    const cut = await backend.chat(request());
    assert.equal(cut.text, "");
    assert.equal(cut.finishReason, "length");
  });

  test("sends the API key as a bearer token and keeps it out of error messages", async () => {
    const key = "sk-test-1234567890";
    fake.handler = () => ({
      status: 401,
      errorBody: { error: { message: `Incorrect API key provided: ${key}`, type: "invalid_request_error" } },
    });
    const err = await failure(backendFor(fake.url, key).chat(request()), "invalid_request");
    assert.equal(fake.requests[0]?.headers.authorization, `Bearer ${key}`);
    assert.equal(err.status, 401);
    assert.ok(!err.message.includes(key), err.message);
    assert.match(err.message, /Incorrect API key provided: \*\*\*/);
  });

  test("retries a 500 and succeeds", async () => {
    fake.handler = (_req, i) => (i === 0 ? { status: 500 } : { text: "fine" });
    assert.equal((await backend.chat(request())).text, "fine");
    assert.equal(fake.requests.length, 2);
  });

  test("gives up on a persistent 500 after 4 attempts, well within the deadline", async () => {
    fake.handler = () => ({ status: 500 });
    const production = new OpenAICompatibleBackend(settings({ url: fake.url }), silent);
    const deadline = Date.now() + 8000;
    const err = await failure(production.chat(request({ deadline })), "server_error");
    assert.equal(err.status, 500);
    assert.equal(fake.requests.length, 4);
    assert.ok(Date.now() < deadline - 4000);
  });

  test("does not retry a 400 and reports the server's message", async () => {
    fake.handler = () => ({
      status: 400,
      errorBody: {
        error: { code: 400, message: "'messages' must be an array", type: "invalid_request_error" },
      },
    });
    const err = await failure(backend.chat(request()), "invalid_request");
    assert.equal(fake.requests.length, 1);
    assert.equal(err.status, 400);
    assert.match(err.message, /'messages' must be an array/);
  });

  test("maps llama-server's context overflow with its token counts, without retrying", async () => {
    fake.handler = () => contextOverflow(5000, 4096);
    const err = await failure(backend.chat(request()), "context_overflow");
    assert.equal(err.promptTokens, 5000);
    assert.equal(err.contextTokens, 4096);
    assert.equal(err.status, 400);
    assert.equal(fake.requests.length, 1);
  });

  test("recognises a context overflow by its message alone (vLLM, OpenAI)", async () => {
    fake.handler = () => ({
      status: 400,
      errorBody: {
        error: { message: "This model's maximum context length is 2048 tokens.", type: "BadRequestError" },
      },
    });
    const err = await failure(backend.chat(request()), "context_overflow");
    assert.equal(err.promptTokens, undefined);
  });

  test("honours retry-after on a 429", async () => {
    fake.handler = (_req, i) => (i === 0 ? { status: 429, headers: { "retry-after": "1" } } : {});
    await backend.chat(request());
    const [first, second] = fake.requests;
    assert.ok(first && second);
    assert.ok(second.receivedAt - first.receivedAt >= 900, "waited as the server asked");
  });

  test("fails with rate_limited at once when retry-after lies beyond the deadline", async () => {
    fake.handler = () => ({ status: 429, headers: { "retry-after": "30" } });
    const err = await failure(backend.chat(request({ deadline: Date.now() + 2000 })), "rate_limited");
    assert.equal(err.status, 429);
    assert.equal(fake.requests.length, 1);
  });

  test("times out at the deadline when the server hangs", async () => {
    fake.handler = () => ({ hang: true });
    await failure(backend.chat(request({ deadline: Date.now() + 300 })), "timeout");
    assert.equal(fake.requests.length, 1);
  });

  test("fails with timeout without calling the server when the deadline has passed", async () => {
    await failure(backend.chat(request({ deadline: Date.now() - 1 })), "timeout");
    assert.equal(fake.requests.length, 0);
  });

  test("retries a reset connection", async () => {
    fake.handler = (_req, i) => (i === 0 ? { destroy: true } : { text: "after reset" });
    assert.equal((await backend.chat(request())).text, "after reset");
    assert.equal(fake.requests.length, 2);
  });

  test("reports cancelled when the caller aborts", async () => {
    fake.handler = () => ({ hang: true });
    const controller = new AbortController();
    const pending = backend.chat(request(), controller.signal);
    setTimeout(() => controller.abort(), 50);
    await failure(pending, "cancelled");
  });

  test("reports cancelled at once for an already aborted signal", async () => {
    await failure(backend.chat(request(), AbortSignal.abort()), "cancelled");
    assert.equal(fake.requests.length, 0);
  });
});

describe("OpenAICompatibleBackend with an answer cut off mid-body", () => {
  const half = '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"mess';
  let server: http.Server;
  let url: string;
  before(async () => {
    server = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(half, () => {
        if (req.url?.includes("/reset/")) req.socket.destroy();
        else if (req.url?.includes("/end/")) res.end();
        // "/hang/": the rest never comes.
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("a reset is unreachable, a clean end a server error, the deadline a timeout, an abort cancelled", async () => {
    const once = { retry: { maxAttempts: 1 } };
    const made: OpenAICompatibleBackend[] = [];
    const backend = (how: string) => {
      made.push(new OpenAICompatibleBackend(settings({ url: `${url}/${how}` }), silent, once));
      return made.at(-1)!;
    };
    try {
      await failure(backend("reset").chat(request()), "unreachable");
      await failure(backend("end").chat(request()), "server_error");
      await failure(backend("hang").chat(request({ deadline: Date.now() + 200 })), "timeout");
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      await failure(backend("hang").chat(request(), controller.signal), "cancelled");
    } finally {
      await Promise.all(made.map((b) => b.stop()));
    }
  });
});

describe("OpenAICompatibleBackend with no server", () => {
  test("reports unreachable, with the address but no stack, and marks itself unhealthy", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const backend = backendFor(url);
    const err = await failure(backend.chat(request()), "unreachable");
    assert.equal(err.message, `model server unreachable at ${url}`);
    assert.equal(backend.health().healthy, false);
    assert.match(backend.health().detail ?? "", /connection refused.*llama-server/);
  });
});
