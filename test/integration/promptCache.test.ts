import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import type { FakeReply } from "../support/fakeModelServer.js";
import { startRig, type Rig } from "../support/harness.js";
import { fetchMetrics } from "../support/metricsText.js";

/** Prompt cache accounting (issue 27.3) with exact numbers from the fake model server. */
describe("prompt cache accounting", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { streaming: { flushIntervalMs: 0 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  async function envelope(sessionId: string, reply: FakeReply, extra: object = {}) {
    rig.model.handler = () => reply;
    await rig.game.publish("general/user_input", {
      sessionId,
      message: "hi",
      responseFormat: "json",
      ...extra,
    });
    return JSON.parse((await rig.game.next(`general/assistant_response/${sessionId}`)).text);
  }

  test("the envelope, the stream's last chunk, /metrics and the snapshot count reused prompt tokens", async () => {
    const base = rig.gateway.httpUrl!;
    const evaluated = 'llmqtt_prompt_tokens_evaluated_total{project="general"}';
    const cached = 'llmqtt_prompt_tokens_cached_total{project="general"}';
    const before = await fetchMetrics(base);

    const first = await envelope("pc", {
      usage: { prompt_tokens: 200, completion_tokens: 10 },
      cache: { cachedTokens: 0 },
    });
    assert.deepEqual(first.usage, { promptTokens: 200, completionTokens: 10, cachedTokens: 0 });

    const second = await envelope(
      "pc",
      {
        usage: { prompt_tokens: 260, completion_tokens: 10 },
        cache: { cachedTokens: 205, reportIn: "timings" },
      },
      { stream: true, requestId: "r2" },
    );
    const usage = { promptTokens: 260, completionTokens: 10, cachedTokens: 205 };
    assert.deepEqual(second.usage, usage);
    const done = rig.game.messages
      .filter((m) => m.topic === "general/assistant_response/pc/stream")
      .map((m) => JSON.parse(m.text))
      .find((chunk) => chunk.done);
    assert.deepEqual(done?.usage, usage);

    // A server that does not report its cache: no cachedTokens, and the cache counts stay put.
    const silent = await envelope("pc", { usage: { prompt_tokens: 300, completion_tokens: 10 } });
    assert.deepEqual(silent.usage, { promptTokens: 300, completionTokens: 10 });

    const after = await fetchMetrics(base);
    assert.equal((after.get(evaluated) ?? 0) - (before.get(evaluated) ?? 0), 200 + 55);
    assert.equal((after.get(cached) ?? 0) - (before.get(cached) ?? 0), 205);
    const status = (await (await fetch(`${base}/api/status`)).json()) as {
      promptCache: Record<string, { evaluatedTokens: number; cachedTokens: number }>;
    };
    assert.deepEqual(status.promptCache, { general: { evaluatedTokens: 255, cachedTokens: 205 } });
  });
});
