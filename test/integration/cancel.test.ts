import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt from "mqtt";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { lastUserText, type FakeHandler } from "../support/fakeModelServer.js";
import { BROKERS, startRig, type Rig } from "../support/harness.js";
import { eventually } from "../support/wait.js";

/**
 * A model that never answers a user turn containing "hang" (nor the maze state at x = 99); it
 * answers others with `re <turn>`, as a maze hint object for maze states.
 */
const hangOnRequest: FakeHandler = (req) => {
  const text = lastUserText(req.body);
  if (text.includes("hang") || text.includes("[99, 1]")) return { hang: true };
  const reply = `re ${text}`;
  return { text: text.startsWith("{") ? JSON.stringify({ hint: reply, suggestion: "up" }) : reply };
};

/** The hint text of a maze reply. */
const hintOf = (text: string): string => (JSON.parse(text) as { hint: string }).hint;

const mazeState = (sessionId: string, x: number, extra: object = {}) => ({
  sessionId,
  player_pos: { x, y: 1 },
  exit_pos: [9, 9],
  ...extra,
});

const CANCELLED = "The request was cancelled.";

for (const kind of BROKERS) {
  describe(`cancellation (PROTOCOL C9) through ${kind.name}`, { skip: kind.skip }, () => {
    let broker: TestBroker;
    let rig: Rig;

    before(async () => {
      broker = await kind.start();
      // One model slot: a turn that kept its slot would hold every later one up.
      rig = await startRig(broker, { projects: ["maze", "general"] }, { slots: 1 });
      await eventually(() => rig.gateway.scheduler.concurrency === 1);
    });
    after(async () => {
      await rig.stop();
      await broker.stop();
    });

    /** Publishes a turn and waits until the model has it. */
    async function started(topic: string, payload: object): Promise<void> {
      const count = rig.model.requestCount;
      await rig.game.publish(topic, payload);
      await eventually(() => rig.model.requestCount > count);
    }

    test("a newer maze state aborts the running one: its slot is freed, it gets no hint, nothing is stored", async () => {
      rig.model.resetStats();
      rig.model.handler = hangOnRequest;
      await started("maze/state", mazeState("m1", 99));
      await rig.game.publish("maze/state", mazeState("m1", 2));
      // The first call never ends by itself: this hint comes only because it was aborted.
      const hint = await rig.game.next("maze/hint/m1");
      assert.match(hintOf(hint.text), /^re \{"player_pos": \[2, 1\]/);
      // A reply to the first state would have been published before the second one started.
      assert.deepEqual(
        rig.game.messages.filter((m) => m.topic.startsWith("maze/hint/m1")),
        [],
      );
      await eventually(() => rig.model.inFlight === 0);
      const session = await rig.gateway.sessions.open({ project: "maze", sessionId: "m1" });
      const [user, assistant] = session.history.map((m) => m.content);
      assert.equal(session.history.length, 2);
      assert.match(user ?? "", /^\{"player_pos": \[2, 1\]/);
      assert.match(hintOf(assistant ?? "{}"), /^re \{"player_pos": \[2, 1\]/);
    });

    test("P/cancel of a running turn answers cancelled on its reply topic, in its format", async () => {
      rig.model.resetStats();
      rig.model.handler = hangOnRequest;
      await started("general/user_input", { sessionId: "c1", requestId: "r1", message: "hang" });
      await rig.game.publish("general/cancel", { sessionId: "c1", requestId: "r1" });
      assert.equal((await rig.game.next("general/assistant_response/c1")).text, `Error: ${CANCELLED}`);

      const envelope = { sessionId: "c1", requestId: "r2", message: "hang", responseFormat: "json" };
      await started("general/user_input", envelope);
      await rig.game.publish("general/cancel", { sessionId: "c1", requestId: "r2" });
      assert.deepEqual(JSON.parse((await rig.game.next("general/assistant_response/c1")).text), {
        error: { code: "cancelled", message: CANCELLED, retryable: false },
        sessionId: "c1",
        requestId: "r2",
      });

      await started("maze/state", mazeState("c2", 99, { requestId: "r3" }));
      await rig.game.publish("maze/cancel", { sessionId: "c2", requestId: "r3" });
      assert.deepEqual(JSON.parse((await rig.game.next("maze/hint/c2")).text), { error: CANCELLED });

      // The session goes on, and nothing of the cancelled turns was stored.
      await rig.game.publish("general/user_input", { sessionId: "c1", message: "still there?" });
      assert.equal((await rig.game.next("general/assistant_response/c1")).text, "re still there?");
      const session = await rig.gateway.sessions.open({ project: "general", sessionId: "c1" });
      assert.deepEqual(
        session.history.map((m) => m.content),
        ["still there?", "re still there?"],
      );
    });

    test("P/cancel of a waiting turn answers it cancelled; the model never gets it", async () => {
      rig.model.resetStats();
      rig.model.handler = hangOnRequest;
      await started("general/user_input", { sessionId: "q1", requestId: "a", message: "hang" });
      await rig.game.publish("general/user_input", { sessionId: "q2", requestId: "b", message: "b" });
      await rig.game.publish("general/cancel", { sessionId: "q2", requestId: "b" });
      assert.equal((await rig.game.next("general/assistant_response/q2")).text, `Error: ${CANCELLED}`);
      await rig.game.publish("general/cancel", { sessionId: "q1", requestId: "a" });
      assert.equal((await rig.game.next("general/assistant_response/q1")).text, `Error: ${CANCELLED}`);
      assert.equal(rig.model.requestCount, 1);
    });

    test("a cancelled streaming turn ends its stream with the error", async () => {
      rig.model.resetStats();
      rig.model.handler = hangOnRequest;
      await started("general/user_input", {
        sessionId: "st",
        requestId: "s1",
        message: "hang",
        stream: true,
      });
      await rig.game.publish("general/cancel", { sessionId: "st", requestId: "s1" });
      const chunk = JSON.parse((await rig.game.next("general/assistant_response/st/stream")).text);
      assert.deepEqual(chunk, {
        requestId: "s1",
        seq: 0,
        done: true,
        error: { code: "cancelled", message: CANCELLED, retryable: false },
      });
      assert.equal((await rig.game.next("general/assistant_response/st")).text, `Error: ${CANCELLED}`);
    });

    test("a cancel of an unknown request, or a malformed one, changes nothing and gets no reply", async () => {
      rig.model.resetStats();
      rig.model.handler = hangOnRequest;
      rig.game.messages.length = 0;
      await rig.game.publish("general/cancel", { sessionId: "nobody", requestId: "x" });
      await rig.game.publish("general/cancel", "not json");
      await rig.game.publish("general/cancel", { sessionId: "u1" });
      await rig.game.publish("general/user_input", { sessionId: "u1", requestId: "x", message: "hi" });
      assert.equal((await rig.game.next("general/assistant_response/u1")).text, "re hi");
      assert.deepEqual(
        rig.game.messages.filter((m) => !m.topic.endsWith("/status")),
        [],
      );
    });
  });
}

describe("the supersede project setting", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    const projects = [
      { name: "completion_service", supersede: "running" as const },
      { name: "maze", supersede: "queued" as const },
    ];
    rig = await startRig(broker, { projects }, { slots: 1 });
    await eventually(() => rig.gateway.scheduler.concurrency === 1);
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("running: any project's newer turn aborts its session's running one", async () => {
    rig.model.handler = hangOnRequest;
    await rig.game.publish("completion_service/user_input", { sessionId: "t1", message: "hang" });
    await eventually(() => rig.model.requestCount === 1);
    await rig.game.publish("completion_service/user_input", { sessionId: "t1", message: "newer" });
    assert.equal((await rig.game.next("completion_service/assistant_response/t1")).text, "re newer");
  });

  test("queued: the maze's running state is left to finish, only waiting ones are replaced", async () => {
    rig.model.resetStats();
    rig.model.handler = hangOnRequest;
    await rig.game.publish("maze/state", mazeState("q1", 99, { requestId: "old" }));
    await eventually(() => rig.model.requestCount === 1);
    await rig.game.publish("maze/state", mazeState("q1", 2));
    await rig.game.publish("maze/state", mazeState("q1", 3));
    await eventually(() => rig.gateway.scheduler.queued === 1);
    assert.equal(rig.model.inFlight, 1, "the running state was not aborted");
    await rig.game.publish("maze/cancel", { sessionId: "q1", requestId: "old" });
    assert.deepEqual(JSON.parse((await rig.game.next("maze/hint/q1")).text), { error: CANCELLED });
    assert.match(hintOf((await rig.game.next("maze/hint/q1")).text), /^re \{"player_pos": \[3, 1\]/);
  });
});

const mosquitto = BROKERS.find((b) => b.name === "mosquitto")!;

describe("MQTT 5 Message Expiry (PROTOCOL C9)", { skip: mosquitto.skip }, () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await mosquitto.start();
    rig = await startRig(broker, { mqtt: { protocolVersion: 5 } }, { slots: 1 });
    await eventually(() => rig.gateway.scheduler.concurrency === 1);
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a request that expired while it waited is answered expired and never reaches the model", async () => {
    rig.model.handler = hangOnRequest;
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    try {
      const send = (sessionId: string, message: string) =>
        client.publishAsync(
          "general/user_input",
          JSON.stringify({ sessionId, requestId: message, message }),
          {
            qos: 1,
            properties: { messageExpiryInterval: 1 },
          },
        );
      // One that starts at once is answered as usual, expiry or not.
      await send("e0", "quick");
      assert.equal((await rig.game.next("general/assistant_response/e0")).text, "re quick");

      rig.model.resetStats();
      await rig.game.publish("general/user_input", { sessionId: "e1", requestId: "h", message: "hang" });
      await eventually(() => rig.model.requestCount === 1);
      await send("e2", "late");
      // Past its one second of expiry while the hanging turn holds the only slot.
      await sleep(1_200);
      await rig.game.publish("general/cancel", { sessionId: "e1", requestId: "h" });
      assert.equal((await rig.game.next("general/assistant_response/e1")).text, `Error: ${CANCELLED}`);
      assert.equal(
        (await rig.game.next("general/assistant_response/e2")).text,
        "Error: The request expired before the model could take it.",
      );
      assert.equal(rig.model.requestCount, 1);
    } finally {
      await client.endAsync();
    }
  });
});
