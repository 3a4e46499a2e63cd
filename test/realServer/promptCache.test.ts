import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { mergeInputs } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { freePort, startAedes, type TestBroker } from "../support/brokers.js";
import { GameClient } from "../support/gameClient.js";
import { fetchMetrics } from "../support/metricsText.js";
import { testSettings } from "../support/settings.js";

const shared = (path: string) => fileURLToPath(new URL(`../../../../shared/${path}`, import.meta.url));
const LLAMA_SERVER = shared("bin/llama-server");
const MODEL = shared("models/stories260K-qwen3-chat.gguf");
const skip =
  process.env.CI === "true" || (existsSync(LLAMA_SERVER) && existsSync(MODEL))
    ? false
    : `${LLAMA_SERVER} or ${MODEL} is missing`;

/** `../shared/bin/llama-server` with the tiny chat model on a free port, ready to answer. */
async function startLlamaServer(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const args = ["-m", MODEL, "--host", "127.0.0.1", "--port", String(port), "-c", "4096", "--parallel", "2"];
  const child = spawn(LLAMA_SERVER, [...args, "--jinja", "-t", "1"], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let tries = 0; tries < 300; tries++) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}`);
    const status = await fetch(`${url}/health`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) return { url, child };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  throw new Error("llama-server did not become ready");
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens?: number;
}

describe("real llama-server: prompt cache accounting", { skip }, () => {
  let server: { url: string; child: ChildProcess } | undefined;
  let broker: TestBroker;
  let gateway: Gateway;
  let game: GameClient;

  before(async () => {
    server = await startLlamaServer();
    broker = await startAedes();
    gateway = new Gateway(
      testSettings(
        mergeInputs({
          mqtt: { url: broker.url },
          server: { url: server.url, timeoutSec: 30 },
          sampling: { maxTokens: 16 },
          logging: { level: "silent", statsIntervalSec: 0 },
          http: { port: 0 },
        }),
      ),
    );
    await gateway.start();
    game = await GameClient.connect(broker.url, ["+/assistant_response/#"]);
  });
  after(async () => {
    await game?.close();
    await gateway?.stop();
    await broker?.stop();
    await stopProcess(server?.child);
  });

  async function turn(sessionId: string, message: string, stream: boolean): Promise<Usage> {
    await game.publish("general/user_input", { sessionId, message, stream, responseFormat: "json" });
    const topic = `general/assistant_response/${sessionId}`;
    const envelope = JSON.parse((await game.next(topic)).text);
    assert.equal(envelope.error, undefined, JSON.stringify(envelope));
    if (stream) {
      let chunk;
      do chunk = JSON.parse((await game.next(`${topic}/stream`)).text);
      while (!chunk.done);
      assert.deepEqual(chunk.usage, envelope.usage, "the stream's last chunk carries the same usage");
    }
    return envelope.usage as Usage;
  }

  for (const stream of [false, true]) {
    test(`two turns of one session${stream ? ", streamed" : ""}: the second reuses the first's prompt`, async () => {
      const sessionId = stream ? "warm-stream" : "warm";
      const cached = 'llmqtt_prompt_tokens_cached_total{project="general"}';
      const evaluated = 'llmqtt_prompt_tokens_evaluated_total{project="general"}';
      const before = await fetchMetrics(gateway.httpUrl!);
      const first = await turn(sessionId, "Once upon a time", stream);
      const second = await turn(sessionId, "And then?", stream);
      assert.equal(typeof first.cachedTokens, "number", JSON.stringify(first));
      assert.ok(second.promptTokens > first.promptTokens, JSON.stringify({ first, second }));
      // At least the system prompt and the first question come from the slot's cache.
      assert.ok(second.cachedTokens! > 20, JSON.stringify(second));
      assert.ok(second.cachedTokens! < second.promptTokens, JSON.stringify(second));
      const after = await fetchMetrics(gateway.httpUrl!);
      const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      assert.equal(moved(cached), first.cachedTokens! + second.cachedTokens!);
      assert.equal(
        moved(evaluated),
        first.promptTokens - first.cachedTokens! + second.promptTokens - second.cachedTokens!,
      );
    });
  }

  test("the server reports its cache as the fake model server does", async () => {
    const body = {
      messages: [{ role: "user", content: "Once upon a time" }],
      max_tokens: 4,
      cache_prompt: true,
    };
    const post = async (extra: object) => {
      const res = await fetch(`${server!.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...body, ...extra }),
      });
      return res.text();
    };
    const answer = JSON.parse(await post({}));
    const { usage, timings } = answer;
    assert.equal(usage.prompt_tokens_details.cached_tokens, timings.cache_n);
    assert.equal(usage.prompt_tokens, timings.prompt_n + timings.cache_n);
    assert.equal(usage.completion_tokens, timings.predicted_n);
    // Streamed without include_usage: timings on the finish chunk; with it, on the usage chunk.
    const events = (text: string) =>
      text
        .split("\n")
        .filter((line) => line.startsWith("data: {"))
        .map((line) => JSON.parse(line.slice(6)));
    const plain = events(await post({ stream: true }));
    assert.ok(plain.find((e) => e.choices[0]?.finish_reason)?.timings);
    const withUsage = events(await post({ stream: true, stream_options: { include_usage: true } }));
    const usageChunk = withUsage.find((e) => e.usage);
    assert.equal(usageChunk.usage.prompt_tokens_details.cached_tokens, usageChunk.timings.cache_n);
  });
});
