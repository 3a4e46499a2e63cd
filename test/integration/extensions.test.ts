import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { BROKERS, startRig, type Rig } from "../support/harness.js";
import { parseMetrics } from "../support/metricsText.js";
import { eventually } from "../support/wait.js";

interface Chunk {
  requestId: string | null;
  seq: number;
  delta?: string;
  done?: true;
  response?: string;
  finishReason?: string;
  error?: { code: string; message: string; retryable: boolean };
}

describe("streaming (PROTOCOL C3)", () => {
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

  async function streamOf(topic: string): Promise<Chunk[]> {
    const chunks: Chunk[] = [];
    for (;;) {
      const chunk = JSON.parse((await rig.game.next(`${topic}/stream`)).text) as Chunk;
      chunks.push(chunk);
      if (chunk.done) return chunks;
    }
  }

  test("chunks numbered from 0 reassemble into the final response; the full reply still arrives", async () => {
    const text = "Once upon a time there was a streaming reply.";
    rig.model.handler = () => ({ text, reasoning: "hidden thoughts" });
    const topic = "general/assistant_response/st1/c/r1";
    await rig.game.publish("general/user_input", {
      sessionId: "st1",
      message: "tell me",
      stream: true,
      requestId: "r1",
      replyTopic: topic,
    });
    const chunks = await streamOf(topic);
    assert.deepEqual(
      chunks.map((c) => c.seq),
      chunks.map((_, i) => i),
    );
    assert.ok(chunks.length > 2, "several deltas");
    const final = chunks.at(-1)!;
    assert.equal(final.response, text);
    assert.equal(final.requestId, "r1");
    assert.equal(final.finishReason, "stop");
    assert.equal(
      chunks
        .slice(0, -1)
        .map((c) => c.delta)
        .join(""),
      text,
    );
    assert.equal((await rig.game.next(topic)).text, text);
    assert.equal(rig.model.requests.at(-1)?.body.stream, true);
  });

  test("a failing turn ends its stream with an error chunk", async () => {
    rig.model.handler = () => ({ status: 400 });
    await rig.game.publish("general/user_input", { sessionId: "st2", message: "x", stream: true });
    const chunks = await streamOf("general/assistant_response/st2");
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0]?.seq, 0);
    assert.equal(chunks[0]?.error?.code, "invalid_request");
    assert.match((await rig.game.next("general/assistant_response/st2")).text, /^Error: /);
  });
});

describe("JSON envelope (PROTOCOL C1)", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { projects: ["general", { name: "api", responseFormat: "json" }] });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a turn asking for json gets the envelope", async () => {
    rig.model.handler = () => ({ text: "enveloped", usage: { prompt_tokens: 12, completion_tokens: 3 } });
    await rig.game.publish("general/user_input", {
      sessionId: "env",
      message: "hi",
      responseFormat: "json",
      requestId: "q1",
      clientId: "c1",
    });
    const reply = JSON.parse((await rig.game.next("general/assistant_response/env")).text);
    assert.equal(reply.response, "enveloped");
    assert.equal(reply.sessionId, "env");
    assert.equal(reply.requestId, "q1");
    assert.equal(reply.clientId, "c1");
    assert.equal(reply.finishReason, "stop");
    assert.deepEqual(reply.usage, { promptTokens: 12, completionTokens: 3 });
    assert.equal(typeof reply.latencyMs, "number");
  });

  test("failures in a json project are error envelopes", async () => {
    rig.model.handler = () => ({ status: 500 });
    await rig.game.publish("api/user_input", { sessionId: "envfail", message: "hi", requestId: "q2" });
    const reply = JSON.parse((await rig.game.next("api/assistant_response/envfail", 15_000)).text);
    assert.deepEqual(Object.keys(reply).sort(), ["error", "requestId", "sessionId"]);
    assert.equal(reply.error.code, "model_error");
    assert.equal(typeof reply.error.retryable, "boolean");
    assert.equal(reply.requestId, "q2");
  });
});

const mosquitto = BROKERS.find((b) => b.name === "mosquitto")!;

describe("MQTT 5 request/response (PROTOCOL C2)", { skip: mosquitto.skip }, () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await mosquitto.start();
    rig = await startRig(broker, { mqtt: { protocolVersion: 5 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("the Response Topic property is answered with Correlation Data and user properties", async () => {
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    try {
      const responseTopic = "general/assistant_response/m5/client/req-9";
      await client.subscribeAsync(responseTopic, { qos: 1 });
      const received = new Promise<{ payload: string; properties: Record<string, unknown> }>((resolve) =>
        client.once("message", (_topic, payload, packet) =>
          resolve({
            payload: payload.toString(),
            properties: (packet.properties ?? {}) as Record<string, unknown>,
          }),
        ),
      );
      await client.publishAsync(
        "general/user_input",
        JSON.stringify({ sessionId: "m5", message: "v5?", requestId: "req-9" }),
        {
          qos: 1,
          properties: { responseTopic, correlationData: Buffer.from("corr-42") },
        },
      );
      const reply = await received;
      assert.equal(reply.payload, "reply to: v5?");
      assert.equal(Buffer.from(reply.properties.correlationData as Buffer).toString(), "corr-42");
      assert.deepEqual(
        { ...(reply.properties.userProperties as object) },
        {
          requestId: "req-9",
          sessionId: "m5",
          status: "ok",
        },
      );
    } finally {
      await client.endAsync();
    }
  });

  test("a Response Topic aimed at another session is not used", async () => {
    await rig.game.publish("general/user_input", "warm-up");
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    try {
      await client.publishAsync(
        "general/user_input",
        JSON.stringify({ sessionId: "own", message: "hijack?" }),
        {
          qos: 1,
          properties: { responseTopic: "general/assistant_response/victim" },
        },
      );
      assert.equal((await rig.game.next("general/assistant_response/own")).text, "reply to: hijack?");
    } finally {
      await client.endAsync();
    }
  });
});

describe("HTTP endpoint", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker);
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("/healthz, and /metrics counters move as turns are served", async () => {
    const base = rig.gateway.httpUrl!;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const before = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    await rig.game.publish("general/user_input", { sessionId: "met", message: "count me" });
    await rig.game.next("general/assistant_response/met");
    await rig.game.publish("general/user_input", "[1]");
    await rig.game.next((t) => t.startsWith("general/assistant_response/"));
    const after = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.equal(delta('llmqtt_messages_received_total{project="general",kind="user_input"}'), 1);
    assert.equal(delta('llmqtt_messages_received_total{project="general",kind="invalid"}'), 1);
    assert.equal(delta('llmqtt_rejected_total{project="general",reason="invalid_request"}'), 1);
    assert.equal(delta('llmqtt_turn_duration_seconds_count{project="general",outcome="ok"}'), 1);
    assert.equal(delta('llmqtt_messages_published_total{project="general",kind="reply"}'), 1);
    assert.equal(after.get("llmqtt_broker_connected"), 1);
    assert.equal(after.get(`llmqtt_model_server_up{server="${rig.gateway.backend.status()[0]?.name}"}`), 1);
    assert.ok((after.get("llmqtt_active_sessions") ?? 0) >= 1);
    assert.ok(after.has("llmqtt_queue_depth"));
  });

  test("/readyz flips when the model server goes away and comes back", async () => {
    const base = rig.gateway.httpUrl!;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    rig.model.health = "loading";
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 503);
    const body = (await (await fetch(`${base}/readyz`)).json()) as {
      checks: { broker: { ok: boolean }; model: { ok: boolean } };
    };
    assert.equal(body.checks.broker.ok, true);
    assert.equal(body.checks.model.ok, false);
    rig.model.health = "ok";
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 200);
  });
});

test("/readyz answers 503 while the broker refuses the request subscriptions after a reconnect", async () => {
  // Aedes's hook stands in for a broker whose ACL changed while llmqtt ran.
  let refuse = false;
  const aedes = await Aedes.createBroker({
    authorizeSubscribe: (_client, subscription, done) => done(null, refuse ? null : subscription),
  });
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const rig = await startRig({ name: "aedes", url: `mqtt://127.0.0.1:${port}`, port, stop: async () => {} });
  try {
    const base = rig.gateway.httpUrl!;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    refuse = true;
    for (const socket of sockets) socket.destroy(); // the connection drops and comes back
    const broker = async () => {
      const response = await fetch(`${base}/readyz`);
      const body = (await response.json()) as { checks: { broker: { ok: boolean; detail?: string } } };
      return { status: response.status, ...body.checks.broker };
    };
    // First not connected, then connected (else the detail would say so) but deaf.
    await eventually(async () => {
      const { ok, detail } = await broker();
      return !ok && detail !== "not connected to the MQTT broker";
    });
    assert.deepEqual(await broker(), {
      status: 503,
      ok: false,
      detail: "requests not subscribed yet, or refused",
    });
  } finally {
    await rig.stop();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
