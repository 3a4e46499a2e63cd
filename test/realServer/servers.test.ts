import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { probeServer } from "../../src/backends/probe.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { LlamaServer, llamaServerSkip } from "../support/llamaServer.js";
import { startRealRig, type RealRig } from "../support/realRig.js";
import { eventually } from "../support/wait.js";

const skip = llamaServerSkip();

const probe = (server: LlamaServer) =>
  probeServer({ root: server.url, server: server.url, fetch, timeoutMs: 5000 }, new AbortController().signal);

describe("real llama-server: health while loading and when ready", { skip }, () => {
  let server: LlamaServer | undefined;
  after(() => server?.stop());

  test("503 while the model loads reads as 'loading model'; then healthy with its slots", async () => {
    // A huge context takes the tiny model long enough to load that /health can be seen saying 503.
    server = await LlamaServer.start({ ctx: 262_144, parallel: 1, noWait: true });
    await eventually(async () => (await server!.healthStatus()) !== "refused", 10_000);
    const loading = await probe(server);
    if ((await server.healthStatus()) === 503) {
      assert.deepEqual(loading, { healthy: false, detail: "loading model" });
    }
    await server.waitReady();
    const ready = await probe(server);
    assert.equal(ready.healthy, true);
    assert.equal(ready.slots, 1);
  });
});

describe("real llama-server: a turn past its deadline", { skip }, () => {
  let broker: TestBroker;
  let server: LlamaServer;
  let short: RealRig;

  before(async () => {
    server = await LlamaServer.start({ ctx: 4096, parallel: 2 });
    broker = await startAedes();
    short = await startRealRig(broker, [server.url], {
      server: { timeoutSec: 0.25 },
      sampling: { maxTokensLimit: 8192 },
    });
  });
  after(async () => {
    await short?.stop();
    await broker?.stop();
    await server?.stop();
  });

  // llama-server (this build) cancels a generation when the client hangs up only for streamed
  // requests; a non-streamed one runs to max_tokens whatever llmqtt does.
  test("a streamed turn past its deadline is aborted and its slot is free at once", async () => {
    await short.game.publish("general/user_input", {
      sessionId: "long",
      message: "Once upon a time",
      maxTokens: 1900,
      stream: true,
    });
    const reply = await short.game.next("general/assistant_response/long");
    assert.match(reply.text, /^Error: .*timed out/i);
    await eventually(async () => (await server.busySlots()) === 0, 10_000);
    const slots = await server.getJson<{ next_token?: { n_decoded: number }[] }[]>("/slots");
    const decoded = Math.max(...slots.map((s) => s.next_token?.[0]?.n_decoded ?? 0));
    assert.ok(decoded < 1900, `generation stopped early (${decoded} tokens decoded)`);
    assert.match(server.log, /cancel task/);
  });
});

describe("real llama-server: a pool of two", { skip }, () => {
  let broker: TestBroker;
  let first: LlamaServer;
  let second: LlamaServer;
  let rig: RealRig;

  before(async () => {
    [first, second] = await Promise.all([
      LlamaServer.start({ ctx: 4096, parallel: 2 }),
      LlamaServer.start({ ctx: 4096, parallel: 2 }),
    ]);
    broker = await startAedes();
    rig = await startRealRig(broker, [first.url, second.url], { sampling: { maxTokensLimit: 8192 } });
  });
  after(async () => {
    await rig?.stop();
    await broker?.stop();
    await Promise.all([first?.stop(), second?.stop()]);
  });

  test("both servers' slots add up", () => {
    assert.equal(rig.gateway.scheduler.concurrency, 4);
  });

  test("with one server stopped mid-run, every turn is still answered by the other", async () => {
    const sessions = ["p1", "p2", "p3", "p4"];
    const round = async () => {
      for (const id of sessions)
        await rig.game.publish("general/user_input", { sessionId: id, message: "hi" });
      return Promise.all(sessions.map((id) => rig.game.next(`general/assistant_response/${id}`, 30_000)));
    };
    for (const reply of await round()) assert.doesNotMatch(reply.text, /^Error/);
    const servedBefore = rig.gateway.backend.status().map((m) => m.served);
    assert.ok(
      servedBefore.every((n) => n > 0),
      `both served: ${servedBefore.join(", ")}`,
    );
    await first.stop();
    for (let i = 0; i < 2; i++) {
      for (const reply of await round())
        assert.doesNotMatch(reply.text, /^Error/, `${reply.text}\n${rig.logs.text().slice(-4000)}`);
    }
    const [, afterSecond] = rig.gateway.backend.status().map((m) => m.served);
    assert.equal(afterSecond, servedBefore[1]! + 2 * sessions.length);
  });
});
