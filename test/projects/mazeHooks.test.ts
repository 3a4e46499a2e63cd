import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { HookTurn, ProjectState } from "../../src/projects/hooks.js";
import { MAZE_HOOKS } from "../../src/projects/maze/hooks.js";
import { hasStateTopic, hooksFor } from "../../src/projects/presets.js";

/** Plays snapshots and replies through the hooks as the turn runner does; returns what the model got. */
function play(
  turns: { kind?: HookTurn["kind"]; content: string; reply: string }[],
  state: ProjectState = {},
) {
  const inputs: string[] = [];
  for (const { kind = "state", content, reply } of turns) {
    const turn: HookTurn = { kind, content, state };
    inputs.push(MAZE_HOOKS.modelInput!(turn));
    state = MAZE_HOOKS.nextState!(turn, reply);
  }
  return { inputs, state };
}

describe("the maze project's hooks", () => {
  test("a repeated snapshot or reply adds STUCK_CONTEXT with the counts in a row", () => {
    const { inputs, state } = play([
      { content: "A", reply: "go left" },
      { content: "A", reply: "go left" },
      { content: "B", reply: "go up" },
    ]);
    assert.equal(inputs[0], "A");
    const marker = (text: string) =>
      JSON.parse(text.split("\n\nSTUCK_CONTEXT: ")[1]!) as Record<string, unknown>;
    assert.equal(marker(inputs[1]!).state_repeat_count, 2);
    assert.equal(marker(inputs[1]!).assistant_repeat_count, 1);
    assert.equal(marker(inputs[2]!).state_repeat_count, 1, "a new state, but the reply repeated");
    assert.equal(marker(inputs[2]!).assistant_repeat_count, 2);
    assert.deepEqual(state, {
      stateRepeatCount: 0,
      assistantRepeatCount: 0,
      lastState: "B",
      lastReply: "go up",
    });
  });

  test("chat turns pass through and leave the counters alone; stored state of any shape is read safely", () => {
    const stored = { stateRepeatCount: 4, lastState: "A", assistantRepeatCount: 0 };
    const { inputs, state } = play([{ kind: "chat", content: "hello", reply: "hi" }], stored);
    assert.deepEqual(inputs, ["hello"]);
    assert.equal(state, stored);
    assert.equal(
      play([{ content: "A", reply: "x" }], { stateRepeatCount: "many", lastState: 7 }).inputs[0],
      "A",
    );
  });

  test("only newer snapshots supersede older ones; maze alone has a state topic", () => {
    assert.equal(MAZE_HOOKS.supersedes!("state"), true);
    assert.equal(MAZE_HOOKS.supersedes!("chat"), false);
    assert.equal(hooksFor("maze"), MAZE_HOOKS);
    assert.equal(hasStateTopic("maze"), true);
    assert.equal(hasStateTopic("general"), false);
    assert.equal(hasStateTopic("unknown"), false);
  });
});
