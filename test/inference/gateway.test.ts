/**
 * Real llama.cpp inference inside llmqtt (node-llama-cpp) with the tiny test models, through the
 * embedded broker, exactly as a game talks to it. The models never stop on their own: every turn
 * sets a small max_tokens.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { mergeInputs, type SettingsInput } from "../../src/config/load.js";
import { testSettings } from "../support/settings.js";
import { Gateway } from "../../src/gateway.js";
import { freePort } from "../support/brokers.js";
import { GameClient } from "../support/gameClient.js";
import { fetchMetrics } from "../support/metricsText.js";
import { eventually } from "../support/wait.js";
import { CLI, runNode } from "../support/processes.js";

const models = fileURLToPath(new URL("../../../../shared/models/", import.meta.url));
const chatModel = `${models}stories260K-qwen3-chat.gguf`;
const toolModel = `${models}stories260K-functionary-tools.gguf`;
const available =
  existsSync(chatModel) &&
  (await import("node-llama-cpp").then(
    () => true,
    () => false,
  ));
const skip =
  available || process.env.CI === "true" ? false : "node-llama-cpp or the test models are not available";

async function startInProcess(overrides: SettingsInput) {
  const port = await freePort();
  const settings = testSettings(
    mergeInputs(
      {
        projects: ["general", "maze"],
        broker: { port, wsPort: 0 },
        model: { path: chatModel, threads: 1, slots: 2, contextSize: 2048 },
        sampling: { maxTokens: 24, temperature: 0 },
        logging: { level: "silent", statsIntervalSec: 0 },
        http: { port: 0 },
        bridge: { enabled: false },
      },
      overrides,
    ),
  );
  const gateway = new Gateway(settings);
  await gateway.start();
  const url = `mqtt://127.0.0.1:${port}`;
  const game = await GameClient.connect(url, ["+/assistant_response/#", "maze/hint/#"]);
  return { gateway, game, url };
}

describe("real inference in-process", { skip }, () => {
  let rig: Awaited<ReturnType<typeof startInProcess>>;

  before(async () => {
    rig = await startInProcess({});
  });
  after(async () => {
    await rig.game.close();
    await rig.gateway.stop();
  });

  test("a full MQTT round trip answered by the tiny model, remembered in history", async () => {
    assert.equal(rig.gateway.scheduler.concurrency, 2, "slots come from the in-process model");
    await rig.game.publish("general/user_input", { sessionId: "real", message: "Tell me a story." });
    const reply = await rig.game.next("general/assistant_response/real", 60_000);
    assert.doesNotMatch(reply.text, /^Error/);
    assert.ok(reply.text.trim().length > 0);
    const session = await rig.gateway.sessions.read({ project: "general", sessionId: "real" });
    assert.deepEqual(
      session?.history.map((m) => m.role),
      ["user", "assistant"],
    );
    assert.equal(session?.history[1]?.content, reply.text);
  });

  test("streamed deltas reassemble into the reply", async () => {
    await rig.game.publish("general/user_input", {
      sessionId: "stream",
      message: "Once upon a time",
      stream: true,
    });
    const chunks: { seq: number; delta?: string; done?: boolean; response?: string }[] = [];
    for (;;) {
      const chunk = JSON.parse(
        (await rig.game.next("general/assistant_response/stream/stream", 60_000)).text,
      );
      chunks.push(chunk);
      if (chunk.done) break;
    }
    const final = chunks.at(-1)!;
    const text = chunks
      .slice(0, -1)
      .map((c) => c.delta)
      .join("");
    assert.equal(text, final.response);
    assert.equal((await rig.game.next("general/assistant_response/stream", 60_000)).text, final.response);
  });

  test("a session's second turn reuses the first one's prompt: envelope usage and /metrics say how much", async () => {
    const cached = 'llmqtt_prompt_tokens_cached_total{project="general"}';
    const evaluated = 'llmqtt_prompt_tokens_evaluated_total{project="general"}';
    const before = await fetchMetrics(rig.gateway.httpUrl!);
    const usages = [];
    for (const message of ["Once upon a time", "And then?"]) {
      await rig.game.publish("general/user_input", { sessionId: "warm", message, responseFormat: "json" });
      usages.push(JSON.parse((await rig.game.next("general/assistant_response/warm", 60_000)).text).usage);
    }
    const [first, second] = usages;
    assert.ok(second.cachedTokens > 0 && second.cachedTokens < second.promptTokens, JSON.stringify(second));
    const after = await fetchMetrics(rig.gateway.httpUrl!);
    const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.equal(moved(cached), first.cachedTokens + second.cachedTokens);
    assert.equal(
      moved(evaluated),
      first.promptTokens - first.cachedTokens + second.promptTokens - second.cachedTokens,
    );
  });

  test("a prompt longer than the context gets a clear error", async () => {
    await rig.game.publish("general/user_input", { sessionId: "huge", message: "word ".repeat(3000) });
    const reply = await rig.game.next("general/assistant_response/huge", 60_000);
    assert.match(reply.text, /^Error: .*context/i);
  });
});

describe("real tool call in-process", { skip }, () => {
  test("the functionary model's forced call becomes the maze action JSON", async () => {
    const rig = await startInProcess({
      // node-llama-cpp's Jinja cannot render functionary's template for nested-array arguments
      // (break_walls, spawn_oxygen, highlight_zone); llama-server can. The flat tools suffice here.
      projects: [
        {
          name: "maze",
          mazeTools: [
            "break_wall",
            "speed_boost",
            "freeze_germs",
            "teleport_player",
            "move_exit",
            "reveal_map",
          ],
          toolChoice: "required",
          maxTokens: 80,
        },
      ],
      model: { path: toolModel, slots: 1 },
    });
    try {
      await rig.game.publish("maze/state", { sessionId: "tools", player_pos: [1, 1], exit_pos: [5, 5] });
      const raw = (await rig.game.next("maze/hint/tools", 60_000)).text;
      const action = JSON.parse(raw) as Record<string, unknown>;
      assert.equal(typeof action.hint, "string", raw);
      const actionKeys = Object.keys(action).filter((key) => key !== "hint");
      assert.ok(actionKeys.length >= 1, `an action besides the hint: ${JSON.stringify(action)}`);
    } finally {
      await rig.game.close();
      await rig.gateway.stop();
    }
  });
});

describe("the newcomer path", { skip }, () => {
  test("llmqtt serve --model with its embedded broker, then llmqtt ask gets an answer", async () => {
    const port = await freePort();
    const serve = spawn(
      process.execPath,
      [
        CLI,
        "serve",
        "--model",
        chatModel,
        "--model-threads",
        "1",
        "--max-tokens",
        "16",
        "--broker-port",
        String(port),
      ],
      {
        env: {
          ...process.env,
          LLMQTT_BROKER_WS_PORT: "0",
          LLMQTT_HTTP_PORT: "0",
          LLMQTT_LOG_FORMAT: "json",
          LLMQTT_SESSION_STORE: "memory",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let log = "";
    serve.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    serve.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    try {
      await eventually(
        () => log.includes("llmqtt ready"),
        60_000,
        () => log,
      );
      const ask = await runNode([
        CLI,
        "ask",
        "--mqtt-url",
        `mqtt://127.0.0.1:${port}`,
        "--timeout",
        "60",
        "Hello there",
      ]);
      assert.equal(ask.code, 0, ask.stderr);
      assert.ok(ask.stdout.trim().length > 0);
    } finally {
      serve.kill("SIGTERM");
      await new Promise((resolve) => serve.once("exit", resolve));
    }
  });
});
