import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { LlamaCppBackend, type LlamaCppOptions } from "../../src/backends/llamaCppBackend.js";
import type { ChatRequest, ToolDefinition } from "../../src/backends/types.js";
import { failure, request } from "./helpers.js";

// Real inference with the tiny test models in ../shared/models (see its README): they write
// children's stories, never stop on their own, and tokenise almost character by character.

const silent = pino({ level: "silent" });

function findRepoRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

const repoRoot = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
const modelFile = (name: string) => path.resolve(repoRoot, "../shared/models", name);
const QWEN = modelFile("stories260K-qwen3-chat.gguf");
const FUNCTIONARY = modelFile("stories260K-functionary-tools.gguf");

// node-llama-cpp is an optional dependency: without it these tests skip, except in CI.
const unavailable = await import("node-llama-cpp").then(
  () => (existsSync(QWEN) && existsSync(FUNCTIONARY) ? undefined : `test models not found next to ${QWEN}`),
  (err: unknown) => `node-llama-cpp is not installed (${err instanceof Error ? err.message : String(err)})`,
);
if (unavailable && process.env["CI"] === "true") {
  test("in-process llama.cpp is available in CI", () => assert.fail(unavailable));
}

/** The tiny model never stops by itself: short replies, and time for a slow machine. */
function chatRequest(overrides: Partial<ChatRequest> = {}): ChatRequest {
  return request({
    messages: [
      { role: "system", content: "You are a storyteller." },
      { role: "user", content: "Tell me about a cat." },
    ],
    temperature: 0.8,
    topP: 0.95,
    maxTokens: 24,
    deadline: Date.now() + 30_000,
    ...overrides,
  });
}

function backendFor(options: Partial<LlamaCppOptions> = {}): LlamaCppBackend {
  return new LlamaCppBackend(
    { modelPath: QWEN, slots: 1, threads: 1, contextSize: 2048, ...options },
    silent,
  );
}

const MOVE: ToolDefinition = {
  name: "move",
  description: "Move the player one square",
  parameters: {
    type: "object",
    properties: { direction: { type: "string", enum: ["north", "south", "east", "west"] } },
    required: ["direction"],
    additionalProperties: false,
  },
};
const WAIT: ToolDefinition = {
  name: "wait",
  description: "Do nothing this turn",
  parameters: { type: "object", properties: {} },
};

describe("LlamaCppBackend with a real model", { skip: unavailable ?? false }, () => {
  let backend: LlamaCppBackend;

  before(async () => {
    backend = backendFor({ slots: 2 });
    await backend.start();
  });
  after(() => backend.stop());

  test("is healthy with one slot per sequence, each with its context, once loaded", () => {
    assert.deepEqual(backend.health(), { healthy: true, slots: 2, contextTokens: 2048 });
    assert.equal(backend.name, "llama.cpp:stories260K-qwen3-chat.gguf");
  });

  test("answers with text, token usage and finish reason length", async () => {
    const result = await backend.chat(chatRequest({ maxTokens: 20 }));
    assert.ok(result.text.trim().length > 0, "empty reply");
    assert.deepEqual(result.toolCalls, []);
    assert.equal(result.finishReason, "length");
    assert.ok(result.usage, "no usage");
    // The prompt is rendered with the GGUF's Qwen3 template: far more tokens than the words.
    assert.ok(result.usage.promptTokens > 30, `promptTokens ${result.usage.promptTokens}`);
    assert.equal(result.usage.completionTokens, 20);
  });

  test("streams deltas that add up to the final text", async () => {
    const deltas: string[] = [];
    const result = await backend.chat(chatRequest({ maxTokens: 30, onDelta: (text) => deltas.push(text) }));
    assert.ok(deltas.length > 1, `only ${deltas.length} deltas`);
    assert.equal(deltas.join(""), result.text);
  });

  test("runs two chats at once on two slots", async () => {
    const results = await Promise.all([
      backend.chat(chatRequest({ maxTokens: 20 })),
      backend.chat(chatRequest({ maxTokens: 20, messages: [{ role: "user", content: "A dog ran." }] })),
    ]);
    for (const result of results) {
      assert.ok(result.text.trim().length > 0);
      assert.equal(result.finishReason, "length");
    }
  });

  test("a third concurrent chat is refused at once: the scheduler, not the model, keeps the queue", async () => {
    const calls = [1, 2, 3].map(() => backend.chat(chatRequest({ maxTokens: 10 })));
    const outcomes = await Promise.allSettled(calls);
    assert.equal(outcomes.filter((o) => o.status === "fulfilled" && o.value.text.length > 0).length, 2);
    await failure(calls[2]!, "rate_limited");
    // The two slots are free again afterwards.
    assert.equal((await backend.chat(chatRequest({ maxTokens: 8 }))).finishReason, "length");
  });

  test("answers with thinking on and off, never showing reasoning", async () => {
    for (const enableThinking of [true, false]) {
      const result = await backend.chat(chatRequest({ enableThinking, maxTokens: 16 }));
      assert.ok(result.text.length > 0);
      assert.doesNotMatch(result.text, /<\/?think>/);
    }
  });

  test("abort cancels a generation in progress", async () => {
    const controller = new AbortController();
    const request = chatRequest({ maxTokens: 1500, onDelta: () => controller.abort() });
    await failure(backend.chat(request, controller.signal), "cancelled");
    await failure(backend.chat(chatRequest(), AbortSignal.abort()), "cancelled");
  });

  test("the per-turn deadline ends a generation with timeout", async () => {
    const started = Date.now();
    await failure(backend.chat(chatRequest({ maxTokens: 1500, deadline: Date.now() + 30 })), "timeout");
    assert.ok(Date.now() - started < 5000, "generation was not cut off");
    await failure(backend.chat(chatRequest({ deadline: Date.now() - 1 })), "timeout");
    // The slots are free again afterwards.
    assert.equal((await backend.chat(chatRequest({ maxTokens: 8 }))).finishReason, "length");
  });

  test("tool_choice required yields one tool call with JSON arguments (Qwen3 template)", async () => {
    const result = await backend.chat(
      chatRequest({ tools: [MOVE, WAIT], toolChoice: "required", maxTokens: 80, temperature: 0 }),
    );
    assertOneToolCall(result.toolCalls);
    assert.equal(result.finishReason, "tool_calls");
  });

  test("tool_choice none ignores the tools", async () => {
    const result = await backend.chat(chatRequest({ tools: [MOVE], toolChoice: "none", maxTokens: 12 }));
    assert.deepEqual(result.toolCalls, []);
    assert.ok(result.text.length > 0);
  });
});

function assertOneToolCall(toolCalls: { name: string; arguments: string }[]): void {
  assert.equal(toolCalls.length, 1, JSON.stringify(toolCalls));
  const [call] = toolCalls;
  assert.ok(call && ["move", "wait"].includes(call.name), `unknown tool ${call?.name}`);
  const args = JSON.parse(call.arguments) as Record<string, unknown>;
  if (call.name === "move")
    assert.ok(["north", "south", "east", "west"].includes(args["direction"] as string));
  else assert.deepEqual(args, {});
}

describe("LlamaCppBackend prompt cache accounting", { skip: unavailable ?? false }, () => {
  test("reports the prompt tokens a slot reused, as llama-server does", async () => {
    const backend = backendFor({ slots: 1 });
    await backend.start();
    try {
      const first = await backend.chat(chatRequest({ maxTokens: 8 }));
      assert.equal(first.usage?.cachedTokens, 0, "a fresh slot has nothing cached");
      // The same prompt again: everything is reused but the last token, which must be evaluated
      // again to sample from (llama-server reports the same, e.g. cache_n 76 of 77).
      const again = await backend.chat(chatRequest({ maxTokens: 8, onDelta: () => {} }));
      assert.equal(again.usage?.promptTokens, first.usage?.promptTokens);
      assert.equal(again.usage?.cachedTokens, again.usage!.promptTokens - 1);
      assert.equal(again.usage?.completionTokens, 8);
      // The next turn of the conversation reuses the system prompt and the first question.
      const next = await backend.chat(
        chatRequest({
          maxTokens: 8,
          messages: [
            ...chatRequest().messages,
            { role: "assistant", content: again.text },
            { role: "user", content: "And then?" },
          ],
        }),
      );
      const { promptTokens, cachedTokens = 0 } = next.usage!;
      assert.ok(promptTokens > first.usage!.promptTokens, `prompt ${promptTokens}`);
      assert.ok(
        cachedTokens > 30 && cachedTokens < promptTokens,
        `cached ${cachedTokens} of ${promptTokens}`,
      );
    } finally {
      await backend.stop();
    }
  });
});

describe("LlamaCppBackend limits and failures", { skip: unavailable ?? false }, () => {
  test("a prompt longer than the context is refused with both sizes", async () => {
    const backend = backendFor({ contextSize: 256 });
    await backend.start();
    try {
      const long = "Once upon a time there was a little cat who liked milk. ".repeat(12);
      const err = await failure(
        backend.chat(chatRequest({ messages: [{ role: "user", content: long }] })),
        "context_overflow",
      );
      assert.equal(err.contextTokens, 256);
      assert.ok((err.promptTokens ?? 0) > 256, `promptTokens ${err.promptTokens}`);
      // A prompt that fits generates until the context is full, never dropping the user's turn.
      const result = await backend.chat(chatRequest({ maxTokens: 1000 }));
      assert.equal(result.finishReason, "length");
      const used = (result.usage?.promptTokens ?? 0) + (result.usage?.completionTokens ?? 0);
      assert.ok(used <= 256, `used ${used} tokens of 256`);
    } finally {
      await backend.stop();
    }
  });

  test("functionary template: tool_choice required gives one schema-valid call", async () => {
    const backend = backendFor({ modelPath: FUNCTIONARY });
    await backend.start();
    try {
      // Greedy decoding keeps this deterministic: with both tools the model picks `wait` (5 tokens)…
      const either = await backend.chat(
        chatRequest({ tools: [MOVE, WAIT], toolChoice: "required", maxTokens: 30, temperature: 0 }),
      );
      assertOneToolCall(either.toolCalls);
      assert.equal(either.finishReason, "tool_calls");
      // …and a call with arguments takes about 30 tokens of this character-level vocabulary.
      const move = await backend.chat(
        chatRequest({ tools: [MOVE], toolChoice: "required", maxTokens: 40, temperature: 0 }),
      );
      assertOneToolCall(move.toolCalls);
      assert.equal(move.toolCalls[0]?.name, "move");
      assert.equal(move.finishReason, "tool_calls");
    } finally {
      await backend.stop();
    }
  });

  test("a missing model file is a clear error naming the path", async () => {
    const missing = path.join(os.tmpdir(), "llmqtt-no-such-model.gguf");
    await assert.rejects(backendFor({ modelPath: missing }).start(), {
      message: `model file not found: ${missing}`,
    });
  });

  test("hf: models are refused unless downloads are allowed", async () => {
    const backend = backendFor({ modelPath: "hf:someone/some-repo/model.gguf" });
    await assert.rejects(backend.start(), /refusing to download model "hf:someone\/some-repo\/model.gguf"/);
    assert.equal(backend.health().healthy, false);
  });

  test("a file that is not a model leaves the backend unhealthy instead of throwing", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "llmqtt-llama-"));
    const junk = path.join(dir, "junk.gguf");
    await writeFile(junk, "this is not a gguf file");
    const backend = backendFor({ modelPath: junk });
    try {
      await backend.start();
      const health = backend.health();
      assert.equal(health.healthy, false);
      assert.match(health.detail ?? "", /failed to load model .*junk\.gguf/);
      await failure(backend.chat(chatRequest()), "unreachable");
    } finally {
      await backend.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("after stop the backend is unhealthy and refuses chats", async () => {
    const backend = backendFor();
    await backend.start();
    await backend.stop();
    assert.equal(backend.health().healthy, false);
    await failure(backend.chat(chatRequest()), "unreachable");
  });
});
