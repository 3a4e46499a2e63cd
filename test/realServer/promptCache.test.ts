import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { llamaServerSkip, type LlamaServer } from "../support/llamaServer.js";
import { fetchMetrics } from "../support/metricsText.js";
import { startProxiedRig, type ProxiedRig, type RealRig } from "../support/realRig.js";
import type { RecordingProxy } from "../support/recordingProxy.js";

interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens?: number;
}

const CACHED = 'llmqtt_prompt_tokens_cached_total{project="general"}';
const EVALUATED = 'llmqtt_prompt_tokens_evaluated_total{project="general"}';

describe("real llama-server: prompt cache accounting", { skip: llamaServerSkip() }, () => {
  let server: LlamaServer;
  let proxy: RecordingProxy;
  let rig: RealRig;

  let setup: ProxiedRig;

  before(async () => {
    setup = await startProxiedRig({ ctx: 4096, parallel: 2 });
    ({ server, proxy, rig } = setup);
  });
  after(() => setup?.stop());

  /** One JSON-envelope turn; a streamed one must end its stream with the same usage. */
  async function turn(sessionId: string, message: string, stream: boolean): Promise<Usage> {
    const topic = `general/assistant_response/${sessionId}`;
    await rig.game.publish("general/user_input", { sessionId, message, stream, responseFormat: "json" });
    const envelope = JSON.parse((await rig.game.next(topic)).text);
    assert.equal(envelope.error, undefined, JSON.stringify(envelope));
    if (stream) {
      let chunk;
      do chunk = JSON.parse((await rig.game.next(`${topic}/stream`)).text);
      while (!chunk.done);
      assert.deepEqual(chunk.usage, envelope.usage, "the stream's last chunk carries the same usage");
    }
    return envelope.usage as Usage;
  }

  for (const stream of [false, true]) {
    test(`two turns of one session${stream ? ", streamed" : ""}: the second reuses the first's prompt`, async () => {
      const sessionId = stream ? "warm-stream" : "warm";
      const before = await fetchMetrics(rig.gateway.httpUrl!);
      proxy.clear();
      const first = await turn(sessionId, "Once upon a time", stream);
      const second = await turn(sessionId, "And then?", stream);
      // Exactly what the server said it evaluated and reused for each request.
      for (const [i, usage] of [first, second].entries()) {
        const timings = proxy.chats[i]!.timings!;
        assert.equal(usage.cachedTokens, timings.cache_n, JSON.stringify({ usage, timings }));
        assert.equal(usage.promptTokens, timings.prompt_n + timings.cache_n);
      }
      // At least the system prompt and the first question come from the slot's cache.
      assert.ok(
        second.cachedTokens! > 20 && second.cachedTokens! < second.promptTokens,
        JSON.stringify(second),
      );
      const after = await fetchMetrics(rig.gateway.httpUrl!);
      const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      assert.equal(moved(CACHED), first.cachedTokens! + second.cachedTokens!);
      assert.equal(
        moved(EVALUATED),
        first.promptTokens - first.cachedTokens! + second.promptTokens - second.cachedTokens!,
      );
    });
  }

  test("the server reports its cache where the fake model server does", async () => {
    const body = { messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 4 };
    const post = async (extra: object) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...body, ...extra }),
      });
      return res.text();
    };
    const { usage, timings } = JSON.parse(await post({}));
    assert.equal(usage.prompt_tokens_details.cached_tokens, timings.cache_n);
    assert.equal(usage.prompt_tokens, timings.prompt_n + timings.cache_n);
    assert.equal(usage.completion_tokens, timings.predicted_n);
    // Streamed: timings on the usage chunk, or on the finish chunk without include_usage.
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
