import { getEventListeners } from "node:events";
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import {
  BrokerConnectError,
  connect,
  LlmqttError,
  ReplyTimeoutError,
  type LlmqttClient,
  type StreamEvent,
} from "../../src/client/index.js";
import {
  freePort,
  mosquittoAvailable,
  startAedes,
  startMosquitto,
  type TestBroker,
} from "../support/brokers.js";

/**
 * The client library against a scripted gateway (a plain MQTT client answering as llmqtt would),
 * for exact control over what comes back: chunks out of order and repeated, errors, silence.
 * Each suite runs on the embedded broker's engine (Aedes) and Mosquitto, with MQTT 3.1.1 and 5.
 */

interface Request {
  topic: string;
  body: Record<string, unknown>;
  responseTopic?: string;
  correlationData?: string;
}

/** Records every request and answers with `script`, on the reply topic it asked for. */
class ScriptedGateway {
  readonly requests: Request[] = [];
  script: (request: Request, gateway: ScriptedGateway) => void = () => undefined;
  private waiters: (() => void)[] = [];

  private constructor(private readonly mqtt: MqttClient) {
    mqtt.on("message", (topic, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {};
      const request: Request = { topic, body: JSON.parse(payload.toString()) as Record<string, unknown> };
      if (responseTopic !== undefined) request.responseTopic = responseTopic;
      if (correlationData !== undefined) request.correlationData = correlationData.toString();
      this.requests.push(request);
      for (const wake of this.waiters.splice(0)) wake();
      this.script(request, this);
    });
  }

  static async start(url: string, protocolVersion: 4 | 5): Promise<ScriptedGateway> {
    const client = await mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 0 });
    await client.subscribeAsync(
      ["+/user_input", "+/state", "+/cancel", "+/template/#", "+/clear_history/#", "+/delete_session/#"],
      { qos: 1 },
    );
    return new ScriptedGateway(client);
  }

  /** Publishes on the request's reply topic (plus `suffix`), echoing its correlation data. */
  reply(request: Request, payload: object | string, suffix = ""): void {
    const topic = (request.responseTopic ?? (request.body.replyTopic as string)) + suffix;
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    const properties =
      request.correlationData === undefined
        ? undefined
        : { correlationData: Buffer.from(request.correlationData) };
    void this.mqtt.publishAsync(topic, text, { qos: 1, properties });
  }

  chunk(request: Request, chunk: object): void {
    this.reply(request, { requestId: request.body.requestId, ...chunk }, "/stream");
  }

  envelope(request: Request, response: string): void {
    const { sessionId, requestId, clientId } = request.body;
    const usage = { promptTokens: 7, completionTokens: 3 };
    this.reply(request, {
      response,
      sessionId,
      requestId,
      clientId,
      finishReason: "stop",
      usage,
      latencyMs: 1,
    });
  }

  async next(match: (request: Request) => boolean): Promise<Request> {
    for (;;) {
      const found = this.requests.find(match);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): Promise<void> {
    return this.mqtt.endAsync();
  }
}

const SETUPS = [
  { broker: "aedes", start: startAedes, protocolVersion: 4 as const, skip: false as const },
  ...([4, 5] as const).map((protocolVersion) => ({
    broker: "mosquitto",
    start: () => startMosquitto(),
    protocolVersion,
    skip: mosquittoAvailable() || process.env.CI === "true" ? (false as const) : "mosquitto is not installed",
  })),
];

for (const setup of SETUPS) {
  describe(
    `client library on ${setup.broker}, MQTT ${setup.protocolVersion === 5 ? "5" : "3.1.1"}`,
    { skip: setup.skip },
    () => {
      let broker: TestBroker;
      let gateway: ScriptedGateway;
      const clients: LlmqttClient[] = [];
      const open = async (options: Parameters<typeof connect>[1] = {}) => {
        const client = await connect(broker.url, { protocolVersion: setup.protocolVersion, ...options });
        clients.push(client);
        return client;
      };

      before(async () => {
        broker = await setup.start();
        gateway = await ScriptedGateway.start(broker.url, setup.protocolVersion);
      });
      afterEach(async () => {
        await Promise.all(clients.splice(0).map((client) => client.close()));
        gateway.script = () => undefined;
        gateway.requests.length = 0;
      });
      after(async () => {
        await gateway.close();
        await broker.stop();
      });

      test("ask: the request names its reply topic, and the envelope comes back as a Reply", async () => {
        gateway.script = (request, g) => g.envelope(request, `echo: ${String(request.body.message)}`);
        const client = await open({ sessionId: "alice" });
        const reply = await client.ask("general", "hello", { temperature: 0.2, systemPrompt: "Be brief." });
        assert.equal(reply.text, "echo: hello");
        assert.equal(reply.finishReason, "stop");
        assert.deepEqual(reply.usage, { promptTokens: 7, completionTokens: 3 });
        assert.equal(reply.sessionId, "alice");
        assert.ok(reply.latencyMs >= 0);

        const request = gateway.requests[0];
        assert.equal(request?.topic, "general/user_input");
        const { body } = request;
        assert.equal(
          body.replyTopic,
          `general/assistant_response/alice/${client.clientId}/${reply.requestId}`,
        );
        assert.equal(reply.topic, body.replyTopic);
        assert.deepEqual(
          [
            body.sessionId,
            body.message,
            body.clientId,
            body.requestId,
            body.responseFormat,
            body.temperature,
            body.systemPrompt,
          ],
          ["alice", "hello", client.clientId, reply.requestId, "json", 0.2, "Be brief."],
        );
        if (setup.protocolVersion === 5) {
          assert.equal(request.responseTopic, body.replyTopic);
          assert.equal(request.correlationData, reply.requestId);
        } else {
          assert.equal(request.responseTopic, undefined);
        }
      });

      test("concurrent calls on several sessions get their own replies", async () => {
        gateway.script = (request, g) => {
          // Answered in reverse order of arrival, once all three are in.
          if (g.requests.length === 3)
            for (const r of [...g.requests].reverse()) g.envelope(r, `re ${String(r.body.message)}`);
        };
        const client = await open();
        const replies = await Promise.all(
          ["one", "two", "three"].map((m, i) => client.ask("general", m, { sessionId: `s/${i}` })),
        );
        assert.deepEqual(
          replies.map((r) => r.text),
          ["re one", "re two", "re three"],
        );
        // Made topic-safe as the gateway does.
        assert.deepEqual(
          replies.map((r) => r.sessionId),
          ["s_0", "s_1", "s_2"],
        );
      });

      test("stream: chunks out of order and repeated come out once, in order, then the reply", async () => {
        gateway.script = (request, g) => {
          for (const chunk of [
            { seq: 2, delta: "c" },
            { seq: 0, delta: "a" },
            { seq: 0, delta: "a" },
            {
              seq: 3,
              done: true,
              response: "abc",
              finishReason: "length",
              usage: { promptTokens: 1, completionTokens: 3 },
            },
            { seq: 1, delta: "b" },
            { seq: 2, delta: "c" },
          ]) {
            g.chunk(request, chunk);
          }
          g.envelope(request, "abc");
        };
        const client = await open();
        const stream = client.stream("general", "count");
        const events: StreamEvent[] = [];
        for await (const event of stream) events.push(event);
        assert.deepEqual(
          events.slice(0, 3),
          ["a", "b", "c"].map((text) => ({ type: "delta", text })),
        );
        const last = events.at(-1);
        assert.equal(events.length, 4);
        assert.ok(last?.type === "reply");
        assert.deepEqual(
          [last.reply.text, last.reply.finishReason, last.reply.requestId],
          ["abc", "length", stream.requestId],
        );
        assert.equal(last.reply.topic, gateway.requests[0]?.body.replyTopic);
        assert.equal(gateway.requests[0]?.body.stream, true);
      });

      test("stream: a gateway that does not stream still ends it, with the whole text as one delta", async () => {
        gateway.script = (request, g) => g.reply(request, "plain reply, no envelope");
        const client = await open();
        const events: StreamEvent[] = [];
        for await (const event of client.stream("general", "hi")) events.push(event);
        assert.deepEqual(events[0], { type: "delta", text: "plain reply, no envelope" });
        assert.ok(events[1]?.type === "reply");
        assert.equal(events[1].reply.finishReason, undefined);
      });

      test("errors: an error envelope rejects ask, an error chunk is thrown by the stream", async () => {
        gateway.script = (request, g) => {
          const error = { code: "context_overflow", message: "too long", retryable: false };
          if (!request.body.stream) {
            const { sessionId, requestId } = request.body;
            return g.reply(request, { error, sessionId, requestId });
          }
          // The error ends the stream only once the chunk before it is in.
          g.chunk(request, { seq: 1, done: true, error });
          g.chunk(request, { seq: 0, delta: "x" });
        };
        const client = await open();
        await assert.rejects(client.ask("general", "long"), (error: unknown) => {
          assert.ok(error instanceof LlmqttError);
          assert.equal(error.code, "context_overflow");
          assert.equal(error.message, "too long");
          return true;
        });
        const seen: StreamEvent[] = [];
        await assert.rejects(
          (async () => {
            for await (const event of client.stream("general", "long")) seen.push(event);
          })(),
          (error: unknown) => error instanceof LlmqttError && error.code === "context_overflow",
        );
        assert.deepEqual(seen, [{ type: "delta", text: "x" }]);
      });

      test("a call nobody answers times out with code no_reply, and the gateway is asked to cancel it", async () => {
        const client = await open({ sessionId: "quiet" });
        const error = await client.ask("general", "anyone?", { timeoutMs: 200 }).catch((e: unknown) => e);
        assert.ok(error instanceof ReplyTimeoutError);
        assert.equal(error.code, "no_reply");
        const cancel = await gateway.next((r) => r.topic === "general/cancel");
        assert.deepEqual(cancel.body, { sessionId: "quiet", requestId: error.requestId });
      });

      test("aborting, cancel() and leaving a stream early all cancel the turn", async () => {
        const client = await open({ sessionId: "s1" });
        const controller = new AbortController();
        const asked = client.ask("general", "slow", { signal: controller.signal, requestId: "by-signal" });
        await gateway.next((r) => r.body.requestId === "by-signal");
        controller.abort();
        await assert.rejects(
          asked,
          (error: unknown) => error instanceof LlmqttError && error.code === "cancelled",
        );
        await gateway.next((r) => r.topic === "general/cancel" && r.body.requestId === "by-signal");

        gateway.script = (request, g) => {
          if (request.body.stream) g.chunk(request, { seq: 0, delta: "first" });
        };
        for await (const event of client.stream("general", "long story", { requestId: "left-early" })) {
          assert.deepEqual(event, { type: "delta", text: "first" });
          break;
        }
        await gateway.next((r) => r.topic === "general/cancel" && r.body.requestId === "left-early");

        await client.cancel("racing", "by-hand", { sessionId: "other" });
        const cancel = await gateway.next((r) => r.topic === "racing/cancel");
        assert.deepEqual(cancel.body, { sessionId: "other", requestId: "by-hand" });
      });

      test("one long-lived signal across many calls: no listener left behind, and it still cancels a stream", async () => {
        gateway.script = (request, g) => {
          if (request.body.message !== "hang") g.envelope(request, "ok");
        };
        const client = await open({ sessionId: "long-lived" });
        const page = new AbortController();
        for (let i = 0; i < 3; i++) await client.ask("general", `turn ${i}`, { signal: page.signal });
        for await (const event of client.stream("general", "streamed", { signal: page.signal })) void event;
        assert.equal(getEventListeners(page.signal, "abort").length, 0, "every call took its listener off");

        const hanging = client.stream("general", "hang", { signal: page.signal, requestId: "page-left" });
        await gateway.next((r) => r.body.requestId === "page-left");
        page.abort();
        await assert.rejects(
          (async () => {
            for await (const event of hanging) void event;
          })(),
          (error: unknown) => error instanceof LlmqttError && error.code === "cancelled",
        );
        await gateway.next((r) => r.topic === "general/cancel" && r.body.requestId === "page-left");
      });

      test("setPrompt, clear and deleteSession publish the session commands", async () => {
        const client = await open({ sessionId: "bob" });
        await client.setPrompt("general", "You are a pirate.", { reset: false });
        await client.setPrompt("maze", "Give hints.", { allSessions: true });
        await client.clear("general");
        await client.deleteSession("general", { sessionId: "carol" });
        await client.clear("general", { allSessions: true });
        await gateway.next((r) => r.topic === "general/clear_history");
        assert.deepEqual(
          gateway.requests.map((r) => [r.topic, r.body]),
          [
            ["general/template/bob", { template: "You are a pirate.", reset: false }],
            ["maze/template", { template: "Give hints." }],
            ["general/clear_history/bob", {}],
            ["general/delete_session/carol", {}],
            ["general/clear_history", {}],
          ],
        );
      });

      test("askState publishes the game state on P/state and reads the hint on P/hint", async () => {
        gateway.script = (request, g) => g.envelope(request, JSON.stringify({ hint: "go left" }));
        const client = await open({ sessionId: "player" });
        const reply = await client.askState("maze", { player_pos: [1, 2], exit_pos: [5, 5] });
        assert.deepEqual(JSON.parse(reply.text), { hint: "go left" });
        const request = gateway.requests[0];
        assert.equal(request?.topic, "maze/state");
        assert.deepEqual(request.body.player_pos, [1, 2]);
        assert.match(reply.topic, new RegExp(`^maze/hint/player/${client.clientId}/`));
      });

      test("close ends the calls still waiting with code closed", async () => {
        const client = await open();
        const asked = client.ask("general", "never answered").catch((error: unknown) => error);
        await gateway.next((r) => r.topic === "general/user_input");
        await client.close();
        const error = await asked;
        assert.ok(error instanceof LlmqttError && error.code === "closed");
        await assert.rejects(
          client.ask("general", "after"),
          (error: unknown) => error instanceof LlmqttError && error.code === "closed",
        );
      });
    },
  );
}

describe("client library: bad input and no broker", () => {
  test("a closed port is a BrokerConnectError, not a retry loop", async () => {
    const port = await freePort();
    await assert.rejects(connect(`mqtt://127.0.0.1:${port}`), (error: unknown) => {
      assert.ok(error instanceof BrokerConnectError);
      assert.equal(error.code, "connect_failed");
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });

  test("project names and request ids that would break topics are refused before publishing", async () => {
    const broker = await startAedes();
    const client = await connect(broker.url);
    try {
      for (const project of ["", "a/+", "#", "/lead", "trail/"]) {
        await assert.rejects(client.ask(project, "hi"), /invalid project name/);
        const stream = client.stream(project, "hi");
        await assert.rejects(
          (async () => {
            for await (const _ of stream) assert.fail("no event expected");
          })(),
          (error: unknown) => error instanceof LlmqttError && error.code === "invalid_request",
        );
      }
      await assert.rejects(client.ask("general", "hi", { requestId: "a/b" }), /one topic level/);
    } finally {
      await client.close();
      await broker.stop();
    }
  });
});

test("a broker that refuses the reply subscription fails the call with subscribe_failed", async () => {
  // An ACL that lets clients publish turns but read no replies (Mosquitto's acl_file grants the
  // subscription and filters on delivery instead, so Aedes's hook stands in for such a broker).
  const aedes = await Aedes.createBroker({
    authorizeSubscribe: (_client, subscription, done) =>
      done(null, subscription.topic.includes("/assistant_response/") ? null : subscription),
  });
  const server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = await connect(`mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    await assert.rejects(client.ask("general", "hi"), (error: unknown) => {
      assert.ok(error instanceof LlmqttError);
      assert.equal(error.code, "subscribe_failed");
      assert.match(error.message, /refused the subscription to general\/assistant_response\//);
      return true;
    });
  } finally {
    await client.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
