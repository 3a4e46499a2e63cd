import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { GameClient } from "../support/gameClient.js";
import { startRig, type Rig } from "../support/harness.js";

describe("bridge topics", () => {
  let broker: TestBroker;
  let rig: Rig;
  let operator: GameClient;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, {
      projects: ["general", "maze"],
      server: { apiKey: "sk-very-secret" },
      mqtt: { clientId: "bridge-test" },
    });
    operator = await GameClient.connect(broker.url, ["llmqtt/bridge/#"]);
  });
  after(async () => {
    await operator.close();
    await rig.stop();
    await broker.stop();
  });

  async function request(command: string, body?: object | string): Promise<Record<string, unknown>> {
    await operator.publish(`llmqtt/bridge/request/${command}`, body ?? "");
    return JSON.parse((await operator.next(`llmqtt/bridge/response/${command}`)).text) as Record<
      string,
      unknown
    >;
  }

  test("retained state and info, with no secret in info", async () => {
    const state = await operator.next("llmqtt/bridge/state");
    assert.equal(state.retain, true);
    assert.deepEqual(JSON.parse(state.text), { state: "online" });
    const info = await operator.next("llmqtt/bridge/info");
    assert.equal(info.retain, true);
    const parsed = JSON.parse(info.text);
    assert.deepEqual(parsed.projects, ["general", "maze"]);
    assert.equal(typeof parsed.version, "string");
    assert.equal(parsed.servers.length, 1);
    assert.equal(parsed.config.server.apiKey, "***");
    assert.doesNotMatch(info.text, /sk-very-secret/);
  });

  test("commands answer on response/<command> with the transaction echoed", async () => {
    const projects = await request("projects", { transaction: "t-1" });
    assert.equal(projects.status, "ok");
    assert.equal(projects.transaction, "t-1");
    assert.deepEqual(
      (projects.data as { name: string }[]).map((p) => p.name),
      ["general", "maze"],
    );

    await rig.game.publish("general/user_input", { sessionId: "op", message: "remember me" });
    await rig.game.next("general/assistant_response/op");
    assert.deepEqual((await request("sessions", { project: "general" })).data, { general: ["op"] });
    const session = (await request("session_get", {
      project: "general",
      sessionId: "op",
      transaction: 7,
    })) as {
      data: { history: { role: string; content: string }[] };
      transaction: unknown;
    };
    assert.equal(session.transaction, 7);
    assert.deepEqual(session.data.history, [
      { role: "user", content: "remember me" },
      { role: "assistant", content: "reply to: remember me" },
    ]);

    const set = await request("prompt_set", {
      project: "general",
      systemPrompt: "Speak like a robot.",
      reset: false,
    });
    assert.equal(set.status, "ok");
    assert.deepEqual((await request("prompt_get", { project: "general" })).data, {
      project: "general",
      systemPrompt: "Speak like a robot.",
    });
    rig.model.resetStats();
    await rig.game.publish("general/user_input", { sessionId: "op", message: "and now?" });
    await rig.game.next("general/assistant_response/op");
    const messages = rig.model.requests[0]?.body.messages;
    assert.equal(messages[0].content, "Speak like a robot.");
    assert.equal(messages.length, 4, "reset false keeps the history");

    assert.deepEqual((await request("session_clear", { project: "general", sessionId: "op" })).data, {
      cleared: 1,
    });
    assert.deepEqual((await request("session_delete", { project: "general" })).data, { deleted: 1 });
    const servers = (await request("servers")).data as { healthy: boolean }[];
    assert.equal(servers[0]?.healthy, true);
    const health = (await request("health")).data as { broker: { connected: boolean } };
    assert.equal(health.broker.connected, true);
  });

  test("bad requests get an error response, and the bridge keeps working", async () => {
    const unknown = await request("reboot", { transaction: "x" });
    assert.equal(unknown.status, "error");
    assert.match(String(unknown.error), /unknown command/);
    assert.equal(unknown.transaction, "x");
    const broken = await request("projects", "{not json");
    assert.equal(broken.status, "error");
    assert.equal(broken.transaction, null);
    const wrongProject = await request("prompt_get", { project: "nope" });
    assert.match(String(wrongProject.error), /project must be one of/);
    const missingId = await request("session_get", { project: "general" });
    assert.match(String(missingId.error), /sessionId is required/);
    assert.equal((await request("projects")).status, "ok");
  });
});

describe("bridge shutdown", () => {
  test("state is retained offline after a clean stop; --bridge false publishes nothing", async () => {
    const broker = await startAedes();
    const rig = await startRig(broker, { bridge: { baseTopic: "ops/llm" } });
    await rig.stop();
    const late = await GameClient.connect(broker.url, ["ops/llm/state"]);
    assert.deepEqual(JSON.parse((await late.next("ops/llm/state")).text), { state: "offline" });
    await late.close();

    const quiet = await startRig(broker, { bridge: { enabled: false, baseTopic: "quiet/bridge" } });
    const watcher = await GameClient.connect(broker.url, ["quiet/bridge/#"]);
    await quiet.game.publish("general/user_input", { sessionId: "q", message: "hi" });
    await quiet.game.next("general/assistant_response/q");
    assert.equal(watcher.messages.length, 0);
    await watcher.close();
    await quiet.stop();
    await broker.stop();
  });
});

describe("bridge.allow", () => {
  test("commands left out are refused; the history and the prompt stay untouched", async () => {
    const broker = await startAedes();
    const rig = await startRig(broker, {
      projects: ["general"],
      bridge: { baseTopic: "ops/allow", allow: ["projects", "sessions", "health"] },
    });
    const operator = await GameClient.connect(broker.url, ["ops/allow/response/#"]);
    const request = async (command: string, body: object) => {
      await operator.publish(`ops/allow/request/${command}`, body);
      return JSON.parse((await operator.next(`ops/allow/response/${command}`)).text) as Record<
        string,
        unknown
      >;
    };
    try {
      await rig.game.publish("general/user_input", { sessionId: "kept", message: "private" });
      await rig.game.next("general/assistant_response/kept");
      const before = await rig.gateway.sessions.projectPrompt("general");
      for (const [command, body] of [
        ["session_get", { project: "general", sessionId: "kept" }],
        ["prompt_set", { project: "general", systemPrompt: "taken over" }],
        ["session_clear", { project: "general", sessionId: "kept" }],
      ] as const) {
        const refused = await request(command, { ...body, transaction: command });
        assert.equal(refused.status, "error", command);
        assert.equal(refused.data, null, command);
        assert.equal(refused.transaction, command);
        assert.match(String(refused.error), new RegExp(`"${command}" is switched off.*bridge\\.allow`));
      }
      assert.equal(await rig.gateway.sessions.projectPrompt("general"), before);
      assert.equal(
        (await rig.gateway.sessions.peek({ project: "general", sessionId: "kept" }))?.history.length,
        2,
      );
      assert.deepEqual((await request("sessions", { project: "general" })).data, { general: ["kept"] });
      assert.match(String((await request("reboot", {})).error), /unknown command/);
    } finally {
      await operator.close();
      await rig.stop();
      await broker.stop();
    }
  });
});
