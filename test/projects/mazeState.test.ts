import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { mazeStateToUserTurn, stuckMarker } from "../../src/projects/maze/state.js";

describe("mazeStateToUserTurn", () => {
  test("writes the original's keys, order and spacing from {x,y} objects", () => {
    const text = mazeStateToUserTurn({
      sessionId: "s1",
      oxygenCollected: 3,
      oxygenPellets: [{ x: 5, y: 6 }, { x: 7 }, [8, 9]],
      germs: [{ x: 1.9, y: -2.5 }, "bad", [3, 4], [5], { x: "a", y: 1 }, null],
      visible_map: [
        [1, 0],
        [0, "é"],
      ],
      exit_pos: { x: 10, y: 11 },
      player_pos: { x: 1, y: 2 },
      extra: "dropped",
    });
    assert.equal(
      text,
      '{"player_pos": [1, 2], "exit_pos": [10, 11], "visible_map": [[1, 0], [0, "é"]], ' +
        '"germs": [[1, -2], [3, 4]], "oxygen": [[5, 6], [8, 9]], "oxygen_collected": 3}',
    );
  });

  test("passes lists through and fills defaults for missing keys", () => {
    assert.equal(
      mazeStateToUserTurn({ player_pos: [4, 5], exit_pos: { y: 7 } }),
      '{"player_pos": [4, 5], "exit_pos": [0, 7], "visible_map": [], "germs": [], "oxygen": [], "oxygen_collected": 0}',
    );
    assert.equal(
      mazeStateToUserTurn({}),
      '{"player_pos": [0, 0], "exit_pos": [0, 0], "visible_map": [], "germs": [], "oxygen": [], "oxygen_collected": 0}',
    );
  });

  test("keeps given values as given", () => {
    assert.equal(
      mazeStateToUserTurn({
        player_pos: null,
        visible_map: "###",
        oxygenCollected: 2.5,
        germs: { x: 1, y: 1 },
      }),
      '{"player_pos": null, "exit_pos": [0, 0], "visible_map": "###", "germs": [], "oxygen": [], "oxygen_collected": 2.5}',
    );
  });
});

describe("stuckMarker", () => {
  test("is empty when nothing repeats", () => {
    assert.equal(stuckMarker(0, 0), "");
  });

  test("appends a Python-style STUCK_CONTEXT object", () => {
    const marker = stuckMarker(2, 0);
    assert.ok(
      marker.startsWith(
        '\n\nSTUCK_CONTEXT: {"stuck": true, "state_repeat_count": 2, "assistant_repeat_count": 0, "instruction": "',
      ),
    );
    const parsed = JSON.parse(marker.slice("\n\nSTUCK_CONTEXT: ".length)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed), [
      "stuck",
      "state_repeat_count",
      "assistant_repeat_count",
      "instruction",
    ]);
    assert.match(String(parsed.instruction), /fresh hint/);
    assert.match(String(parsed.instruction), /different action/);
    assert.match(stuckMarker(0, 1), /"state_repeat_count": 0, "assistant_repeat_count": 1/);
  });
});
