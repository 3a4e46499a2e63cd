import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ChatWrapper } from "node-llama-cpp";
import { pino } from "pino";
import { LlamaCppBackend } from "../../src/backends/llamaCppBackend.js";
import {
  finishReason,
  requireFunctionCall,
  toChatFunctions,
  toChatHistory,
  toGbnfSchema,
} from "../../src/backends/llamaCppRequest.js";
import {
  checkModelPath,
  defaultModelCacheDir,
  defaultThreads,
  importNodeLlamaCpp,
  INSTALL_HINT,
} from "../../src/backends/llamaCppRuntime.js";
import { SlotPool } from "../../src/backends/llamaCppSlots.js";
import { TurnControl, TurnStop } from "../../src/backends/llamaCppTurn.js";
import { BackendError } from "../../src/backends/types.js";

// Everything here runs without node-llama-cpp or a model.

const silent = pino({ level: "silent" });

function missingPackage(): Error {
  return Object.assign(new Error("Cannot find package 'node-llama-cpp' imported from /app/dist/x.js"), {
    code: "ERR_MODULE_NOT_FOUND",
  });
}

describe("llama.cpp runtime helpers", () => {
  test("a missing node-llama-cpp install gives one clear error", async () => {
    await assert.rejects(
      importNodeLlamaCpp(async () => Promise.reject(missingPackage())),
      {
        message: INSTALL_HINT,
      },
    );
    assert.match(INSTALL_HINT, /install node-llama-cpp to use --model/);
    const broken = Object.assign(new Error("Cannot find package 'chalk'"), { code: "ERR_MODULE_NOT_FOUND" });
    await assert.rejects(
      importNodeLlamaCpp(async () => Promise.reject(broken)),
      {
        message: "node-llama-cpp failed to load: Cannot find package 'chalk'",
      },
    );
  });

  test("start checks the model file before loading node-llama-cpp", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "llmqtt-llama-"));
    try {
      const file = path.join(dir, "model.gguf");
      await writeFile(file, "GGUF");
      let imported = 0;
      const importer = async () => {
        imported++;
        throw missingPackage();
      };
      const missing = new LlamaCppBackend({ modelPath: path.join(dir, "none.gguf") }, silent, {
        importNodeLlamaCpp: importer,
      });
      await assert.rejects(missing.start(), /model file not found: .*none\.gguf/);
      assert.equal(imported, 0);
      const present = new LlamaCppBackend({ modelPath: file }, silent, { importNodeLlamaCpp: importer });
      await assert.rejects(present.start(), { message: INSTALL_HINT });
      assert.equal(imported, 1);
      assert.equal(present.health().healthy, false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("checkModelPath resolves local files and refuses downloads unless allowed", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "llmqtt-llama-"));
    try {
      await assert.rejects(checkModelPath(dir, false), /model path is not a file/);
      await assert.rejects(
        checkModelPath("hf:a/b/c.gguf", false),
        /refusing to download model "hf:a\/b\/c\.gguf"/,
      );
      await assert.rejects(checkModelPath("https://example.com/m.gguf", false), /refusing to download/);
      assert.equal(await checkModelPath("hf:a/b/c.gguf", true), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("thread default is half the logical CPUs, at least one", () => {
    assert.equal(defaultThreads(1), 1);
    assert.equal(defaultThreads(2), 1);
    assert.equal(defaultThreads(3), 1);
    assert.equal(defaultThreads(8), 4);
    assert.ok(defaultThreads() >= 1);
  });

  test("models are cached under XDG_CACHE_HOME or ~/.cache", () => {
    assert.equal(defaultModelCacheDir({ XDG_CACHE_HOME: "/x" }), path.join("/x", "llmqtt", "models"));
    assert.equal(defaultModelCacheDir({}), path.join(os.homedir(), ".cache", "llmqtt", "models"));
  });

  test("options are validated", () => {
    assert.throws(() => new LlamaCppBackend({ modelPath: "m.gguf", slots: 0 }, silent), /slots must be/);
    assert.throws(() => new LlamaCppBackend({ modelPath: "m.gguf", threads: 1.5 }, silent), /threads must/);
    const backend = new LlamaCppBackend({ modelPath: "/models/m.gguf" }, silent);
    assert.equal(backend.name, "llama.cpp:m.gguf");
    assert.deepEqual(backend.health(), { healthy: false, detail: "model not loaded yet" });
  });

  test("chat before start is unreachable", async () => {
    const backend = new LlamaCppBackend({ modelPath: "/models/m.gguf" }, silent);
    const err = await backend
      .chat({
        messages: [{ role: "user", content: "hi" }],
        temperature: 0,
        topP: 1,
        maxTokens: 4,
        enableThinking: false,
        deadline: Date.now() + 1000,
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof BackendError && err.code === "unreachable");
  });
});

describe("llama.cpp request translation", () => {
  test("messages become chat history ending with an empty model turn", () => {
    assert.deepEqual(
      toChatHistory([
        { role: "system", content: "S" },
        { role: "user", content: "U" },
        { role: "assistant", content: "A" },
        { role: "user", content: "U2" },
      ]),
      [
        { type: "system", text: "S" },
        { type: "user", text: "U" },
        { type: "model", response: ["A"] },
        { type: "user", text: "U2" },
        { type: "model", response: [] },
      ],
    );
  });

  test("tools become functions; argument-less tools get no params", () => {
    const functions = toChatFunctions([
      {
        name: "move",
        description: "Move",
        parameters: {
          type: "object",
          title: "Move",
          properties: { steps: { type: "integer", minimum: 1, default: 1, description: "how far" } },
          required: ["steps"],
        },
      },
      { name: "wait", description: "", parameters: { type: "object", properties: {} } },
      { name: "noop", description: "Nothing", parameters: {} },
    ]);
    assert.deepEqual(functions, {
      move: {
        description: "Move Arguments — steps: how far.",
        params: { type: "object", properties: { steps: { type: "integer" } } },
      },
      wait: {},
      noop: { description: "Nothing" },
    });
  });

  test("JSON Schema is narrowed to what node-llama-cpp can turn into a grammar", () => {
    assert.deepEqual(toGbnfSchema({ anyOf: [{ type: "string", pattern: "x" }, { type: "null" }] }), {
      oneOf: [{ type: "string" }, { type: "null" }],
    });
    assert.deepEqual(toGbnfSchema({ type: ["string", "null"], description: "d" }), {
      type: ["string", "null"],
    });
    assert.deepEqual(toGbnfSchema({ type: ["object", "null"], properties: { a: { const: 1 } } }), {
      oneOf: [{ type: "object", properties: { a: { const: 1 } } }, { type: "null" }],
    });
    assert.deepEqual(toGbnfSchema({ type: "string", format: "email", maxLength: 5 }), {
      type: "string",
      maxLength: 5,
    });
    assert.deepEqual(toGbnfSchema({ type: "string", format: "date" }), { type: "string", format: "date" });
    assert.deepEqual(toGbnfSchema({ type: "array", items: { enum: ["a", "b"] }, maxItems: 2 }), {
      type: "array",
      items: { enum: ["a", "b"] },
      maxItems: 2,
    });
    // An object that says nothing about its keys takes any keys; an untyped schema any value.
    assert.deepEqual(toGbnfSchema({ type: "object" }), { type: "object", additionalProperties: true });
    assert.deepEqual(toGbnfSchema({}), {
      oneOf: [
        { type: ["string", "number", "boolean", "null"] },
        { type: "object", additionalProperties: true },
      ],
    });
    assert.deepEqual(toGbnfSchema({ properties: { x: { type: "boolean" } } }), {
      type: "object",
      properties: { x: { type: "boolean" } },
    });
    assert.deepEqual(toGbnfSchema({ $ref: "#/$defs/d", $defs: { d: { type: "number", minimum: 0 } } }), {
      $ref: "#/$defs/d",
      $defs: { d: { type: "number" } },
    });
  });

  test("tool_choice required engages function calling from the first token", () => {
    const base = {
      wrapperName: "Fake",
      generateContextState: () => ({
        contextText: "CTX",
        stopGenerationTriggers: ["STOP"],
        prefixTriggers: [{ type: "segment", triggers: [] }],
      }),
    } as unknown as ChatWrapper;
    const forced = requireFunctionCall(base);
    assert.equal(forced.wrapperName, "Fake");
    assert.deepEqual(forced.generateContextState({ chatHistory: [] }), {
      contextText: "CTX",
      stopGenerationTriggers: ["STOP"],
      functionCall: { initiallyEngaged: true, disengageInitiallyEngaged: [] },
    });
  });

  test("finish reasons follow the OpenAI names", () => {
    assert.equal(finishReason("maxTokens", 0), "length");
    assert.equal(finishReason("eogToken", 0), "stop");
    assert.equal(finishReason("customStopTrigger", 0), "stop");
    assert.equal(finishReason("functionCalls", 1), "tool_calls");
    assert.equal(finishReason("maxTokens", 1), "tool_calls");
  });
});

describe("SlotPool", () => {
  test("lends the free slot with the best score, and none while all are lent", () => {
    const pool = new SlotPool(["a", "bb", "c"]);
    assert.equal(
      pool.take((s) => s.length),
      "bb",
    );
    assert.equal(pool.available, 2);
    assert.equal(pool.take(), "a");
    assert.equal(pool.take(), "c");
    assert.equal(pool.take(), undefined, "no waiting line: a call finds a slot or none");
    pool.give("bb");
    assert.equal(pool.take(), "bb");
  });
});

describe("TurnControl", () => {
  test("the caller's abort is cancelled, the deadline is timeout, whichever comes first", async () => {
    const controller = new AbortController();
    const turn = new TurnControl(Date.now() + 60_000, controller.signal);
    assert.equal(turn.stopped, undefined);
    controller.abort();
    assert.equal(turn.stopped, "cancelled");
    assert.ok(turn.signal.reason instanceof TurnStop);
    assert.throws(() => turn.throwIfCancelledOrTimedOut(), { code: "cancelled" });
    turn.dispose();

    const late = new TurnControl(Date.now() + 20, undefined);
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(late.stopped, "timeout");
    late.stop("cancelled");
    assert.equal(late.stopped, "timeout");
    assert.throws(() => late.throwIfCancelledOrTimedOut(), { code: "timeout" });
    late.dispose();

    const past = new TurnControl(1000, undefined, () => 2000);
    assert.equal(past.stopped, "timeout");
    past.dispose();
  });

  test("a full context is not an error for the caller", () => {
    const turn = new TurnControl(Date.now() + 60_000, undefined);
    turn.stop("context_full");
    assert.equal(turn.stopped, "context_full");
    turn.throwIfCancelledOrTimedOut();
    turn.dispose();
  });
});
