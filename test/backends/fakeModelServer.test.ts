import type http from "node:http";
import { performance } from "node:perf_hooks";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { FakeModelServer } from "../support/fakeModelServer.js";

describe("FakeModelServer streaming", () => {
  let fake: FakeModelServer;
  let client: OpenAI;
  before(async () => {
    fake = await FakeModelServer.start();
    client = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: "no-key", maxRetries: 0 });
  });
  after(() => fake.stop());

  test("answers stream: true with SSE chunks the openai SDK parses", async () => {
    fake.handler = () => ({ text: "Go north, then east.", reasoning: "hidden" });
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "where?" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    let reasoning = "";
    let deltas = 0;
    let finishReason: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      const delta = choice?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      if (delta?.content) {
        content += delta.content;
        deltas++;
      }
      if (delta?.reasoning_content) reasoning += delta.reasoning_content;
      finishReason = choice?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(content, "Go north, then east.");
    assert.ok(deltas > 1, "content arrives in several deltas");
    assert.equal(reasoning, "hidden");
    assert.equal(finishReason, "stop");
    assert.deepEqual(usage, { prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
  });

  test("streams tool calls that the SDK's stream helper reassembles", async () => {
    fake.handler = () => ({ text: "", toolCalls: [{ name: "move_exit", arguments: '{"x":1,"y":2}' }] });
    const runner = client.chat.completions.stream({
      model: "m",
      messages: [{ role: "user", content: "help" }],
    });
    const completion = await runner.finalChatCompletion();
    const call = completion.choices[0]?.message.tool_calls?.[0];
    assert.ok(call && call.type === "function");
    assert.equal(call.function.name, "move_exit");
    assert.equal(call.function.arguments, '{"x":1,"y":2}');
    assert.equal(completion.choices[0]?.finish_reason, "tool_calls");
  });

  test("counts concurrent requests", async () => {
    fake.resetStats();
    // A barrier, not a delay: every request is held until all three are in, however slow the machine.
    let release: () => void = () => {};
    const allIn = new Promise<void>((resolve) => (release = resolve));
    fake.handler = async () => {
      if (fake.requests.length === 3) release();
      await allIn;
      return {};
    };
    const ask = () =>
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    await Promise.all([ask(), ask(), ask()]);
    assert.equal(fake.maxInFlight, 3);
    assert.equal(fake.inFlight, 0);
    assert.equal(fake.requests.length, 3);
  });
});

test("FakeModelServer without recordRequests counts requests and keeps none", async () => {
  const fake = await FakeModelServer.start({ recordRequests: false });
  try {
    const seen: number[] = [];
    fake.handler = (request, index) => {
      seen.push(index);
      return { text: `got ${String(request.body.messages[0].content)}` };
    };
    const client = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: "no-key", maxRetries: 0 });
    const ask = (content: string) =>
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content }] });
    assert.equal((await ask("a")).choices[0]?.message.content, "got a");
    await ask("b");
    assert.deepEqual(seen, [0, 1]);
    assert.equal(fake.requestCount, 2);
    assert.equal(fake.requests.length, 0);
    fake.resetStats();
    assert.equal(fake.requestCount, 0);
  } finally {
    await fake.stop();
  }
});

test("FakeModelServer answers a delayed reply no sooner than the delay after the request arrived", async () => {
  const fake = await FakeModelServer.start({ recordRequests: false });
  try {
    const delayMs = 5;
    fake.handler = () => ({ delayMs });
    // The server's own clock, as the benchmark reads it: request arrival to response written.
    const served: number[] = [];
    const server = (fake as unknown as { server: http.Server }).server;
    server.prependListener("request", (_req: http.IncomingMessage, res: http.ServerResponse) => {
      const arrived = performance.now();
      res.once("finish", () => served.push(performance.now() - arrived));
    });
    const client = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: "no-key", maxRetries: 0 });
    for (let i = 0; i < 20; i++) {
      await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    }
    assert.equal(served.length, 20);
    for (const ms of served) assert.ok(ms >= delayMs, `answered after ${ms.toFixed(3)} ms`);
  } finally {
    await fake.stop();
  }
});
