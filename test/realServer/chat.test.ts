import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BROKERS } from "../support/harness.js";
import { llamaServerSkip } from "../support/llamaServer.js";
import { startProxiedRig, type ProxiedRig, type RealRig } from "../support/realRig.js";
import type { RecordingProxy } from "../support/recordingProxy.js";

type Message = { role: string; content: string };

for (const kind of BROKERS) {
  describe(`real llama-server: chat through ${kind.name}`, { skip: llamaServerSkip() || kind.skip }, () => {
    let proxy: RecordingProxy;
    let rig: RealRig;

    let setup: ProxiedRig;

    before(async () => {
      setup = await startProxiedRig({ ctx: 8192, parallel: 3 }, { broker: kind.start });
      ({ proxy, rig } = setup);
    });
    after(() => setup?.stop());

    test("slots come from /props: three turns run at once", () => {
      assert.equal(rig.gateway.scheduler.concurrency, 3);
    });

    test("a chat turn is answered with the model's text and kept as history", async () => {
      proxy.clear();
      await rig.game.publish("general/user_input", { sessionId: "c1", message: "Once upon a time" });
      const first = await rig.game.next("general/assistant_response/c1");
      assert.ok(first.text.length > 0 && !first.text.startsWith("Error"), first.text);
      await rig.game.publish("general/user_input", { sessionId: "c1", message: "and then?" });
      await rig.game.next("general/assistant_response/c1");
      const sent = proxy.chats[1]!.body["messages"] as Message[];
      assert.deepEqual(
        sent.slice(1).map((m) => m.role),
        ["user", "assistant", "user"],
      );
      assert.equal(sent[2]!.content, first.text);
      // The second turn reuses the first one's prompt from the slot's cache.
      assert.ok(proxy.chats[1]!.timings!.cache_n > 0, JSON.stringify(proxy.chats[1]!.timings));
    });

    test("a streamed turn sends numbered deltas that add up to the reply", async () => {
      await rig.game.publish("general/user_input", {
        sessionId: "s1",
        message: "Tell a story",
        requestId: "r1",
        stream: true,
        responseFormat: "json",
      });
      const envelope = JSON.parse((await rig.game.next("general/assistant_response/s1")).text);
      const chunks = rig.game.messages
        .filter((m) => m.topic === "general/assistant_response/s1/stream")
        .map((m) => JSON.parse(m.text) as { seq: number; delta?: string; done?: boolean; response?: string });
      const done = chunks.find((c) => c.done);
      assert.ok(done, "the stream ends with a done chunk");
      assert.deepEqual(
        chunks.map((c) => c.seq),
        chunks.map((_, i) => i),
      );
      const text = chunks.map((c) => c.delta ?? "").join("");
      assert.equal(text, envelope.response);
      assert.equal(done.response, envelope.response);
      assert.equal(envelope.finishReason, "length");
      assert.equal(envelope.usage.completionTokens, 16);
      assert.ok(envelope.usage.promptTokens > 0);
    });

    test("an image turn to a server without vision gets a clear error, not a retry", async () => {
      proxy.clear();
      const pixel =
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
      await rig.game.publish("general/user_input", {
        sessionId: "img",
        message: "what is it?",
        images: [pixel],
      });
      const reply = await rig.game.next("general/assistant_response/img");
      assert.match(reply.text, /^Error: .*cannot take images/);
      assert.equal(proxy.chats.length, 1, "refused once, never retried");
    });
  });
}
