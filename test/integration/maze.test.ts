import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { lastUserText } from "../support/fakeModelServer.js";
import { startRig, type Rig } from "../support/harness.js";

type Message = { role: string; content: string };

/** A reply the maze's default schema (PROTOCOL C7) accepts. */
const hint = (text: string) => JSON.stringify({ hint: text, suggestion: "go up" });

const snapshot = (sessionId: string, x: number) => ({
  sessionId,
  player_pos: { x, y: 1 },
  exit_pos: [9, 9],
  visible_map: [
    [0, 1],
    [1, 0],
  ],
  germs: [{ x: 3, y: 4 }, "bad", [5, 6]],
  oxygenPellets: [{ x: 2, y: 2 }],
  oxygenCollected: 3,
  extra: "dropped",
});

describe("maze game flow", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { projects: ["maze", "general"], server: { slots: 2 } });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a snapshot becomes the user turn with the exact key order and is answered on maze/hint", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: '{"hint": "go right", "suggestion": "right"}' });
    await rig.game.publish("maze/state", snapshot("m1", 1));
    const reply = await rig.game.next("maze/hint/m1");
    assert.equal(reply.text, '{"hint": "go right", "suggestion": "right"}');
    const messages = rig.model.requests[0]?.body.messages as Message[];
    assert.equal(
      messages.at(-1)?.content,
      '{"player_pos": [1, 1], "exit_pos": [9, 9], "visible_map": [[0, 1], [1, 0]], "germs": [[3, 4], [5, 6]], "oxygen": [[2, 2]], "oxygen_collected": 3}',
    );
    assert.match(messages[0]?.content ?? "", /"hint"/);
  });

  test("a repeated snapshot carries the stuck context", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: hint("same hint") });
    await rig.game.publish("maze/state", snapshot("m2", 4));
    await rig.game.next("maze/hint/m2");
    await rig.game.publish("maze/state", snapshot("m2", 4));
    await rig.game.next("maze/hint/m2");
    const first = (rig.model.requests[0]?.body.messages as Message[]).at(-1)?.content ?? "";
    const second = (rig.model.requests[1]?.body.messages as Message[]).at(-1)?.content ?? "";
    assert.doesNotMatch(first, /STUCK_CONTEXT/);
    const [, marker] = second.split("\n\nSTUCK_CONTEXT: ");
    const stuck = JSON.parse(marker ?? "null");
    assert.equal(stuck.stuck, true);
    assert.equal(stuck.state_repeat_count, 2, "seen twice in a row");
    assert.equal(typeof stuck.instruction, "string");
  });

  test("a newer snapshot replaces the waiting one and aborts the running one: only the latest is answered", async () => {
    rig.model.resetStats();
    rig.model.handler = (req) => ({ text: hint(lastUserText(req.body).slice(0, 30)), delayMs: 150 });
    for (let x = 10; x < 15; x++) await rig.game.publish("maze/state", snapshot("m3", x));
    const reply = JSON.parse((await rig.game.next("maze/hint/m3")).text) as { hint: string };
    assert.match(reply.hint, /"player_pos": \[14, 1\]/);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(rig.game.messages.filter((m) => m.topic === "maze/hint/m3").length, 0, "no stale hint");
    const last = (rig.model.requests.at(-1)?.body.messages as Message[]).at(-1)?.content ?? "";
    assert.match(last, /"player_pos": \[14, 1\]/);
  });

  test("chat turns and snapshots with the same sessionId share one session", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({ text: hint("shared") });
    await rig.game.publish("maze/state", snapshot("m4", 1));
    await rig.game.next("maze/hint/m4");
    await rig.game.publish("maze/user_input", { sessionId: "m4", message: "where now?" });
    await rig.game.next("maze/assistant_response/m4");
    assert.equal(rig.model.requests[1]?.body.messages.length, 4);
  });

  test("per-session template and clear publish maze notices", async () => {
    await rig.game.publish("maze/template/m5", { prompt_template: { content: "Only say hi." } });
    assert.deepEqual(JSON.parse((await rig.game.next("maze/hint/m5")).text), { hint: "Template updated" });
    rig.model.resetStats();
    await rig.game.publish("maze/state", snapshot("m5", 1));
    await rig.game.next("maze/hint/m5");
    assert.equal(rig.model.requests[0]?.body.messages[0].content, "Only say hi.");
    await rig.game.publish("maze/clear_history/m5", "{}");
    assert.deepEqual(JSON.parse((await rig.game.next("maze/hint/m5")).text), { hint: "History cleared" });
  });

  test("a global template reset gives every session the new prompt and clears history", async () => {
    rig.model.handler = () => ({ text: hint("g") });
    await rig.game.publish("maze/state", snapshot("m6", 1));
    await rig.game.next("maze/hint/m6");
    await rig.game.publish("maze/template", { template: "New maze rules.", reset: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    rig.model.resetStats();
    await rig.game.publish("maze/state", snapshot("m6", 2));
    await rig.game.next("maze/hint/m6");
    await rig.game.publish("maze/state", snapshot("brand-new", 2));
    await rig.game.next("maze/hint/brand-new");
    for (const request of rig.model.requests) {
      assert.deepEqual(request.body.messages.length, 2);
      assert.equal(request.body.messages[0].content, "New maze rules.");
    }
  });

  test("model errors on maze/hint are JSON objects with an error key", async () => {
    rig.model.handler = () => ({
      status: 400,
      errorBody: { error: { code: 400, message: "bad grammar", type: "invalid_request_error" } },
    });
    await rig.game.publish("maze/state", snapshot("m7", 1));
    const reply = JSON.parse((await rig.game.next("maze/hint/m7")).text);
    assert.equal(typeof reply.error, "string");
    assert.match(reply.error, /bad grammar/);
  });
});

describe("maze tools", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { projects: ["maze"], mazeTools: true });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("tool calls become the maze action JSON", async () => {
    rig.model.resetStats();
    rig.model.handler = () => ({
      text: "Break through!",
      toolCalls: [
        { name: "break_wall", arguments: '{"x": 3, "y": 4}' },
        { name: "speed_boost", arguments: '{"duration_ms": 1500}' },
        { name: "teleport_player", arguments: "{not json" },
      ],
    });
    await rig.game.publish("maze/state", snapshot("t1", 1));
    const action = JSON.parse((await rig.game.next("maze/hint/t1")).text);
    assert.deepEqual(action, { hint: "Break through!", break_wall: [3, 4], speed_boost_ms: 1500 });
    const tools = rig.model.requests[0]?.body.tools as { function: { name: string } }[];
    assert.ok(tools.some((tool) => tool.function.name === "break_wall"));
    assert.equal(rig.model.requests[0]?.body.response_format, undefined, "actions, not the hint schema");
  });
});
