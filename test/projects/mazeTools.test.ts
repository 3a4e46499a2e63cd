import { describe, test } from "node:test";
import assert from "node:assert/strict";

import type { ToolCall } from "../../src/backends/types.js";
import { MAZE_TOOLS, formatMazeAction, toolCallsToMazeAction } from "../../src/projects/maze/tools.js";

const call = (name: string, args: unknown): ToolCall => ({
  name,
  arguments: typeof args === "string" ? args : JSON.stringify(args),
});

describe("MAZE_TOOLS", () => {
  test("defines the ten maze actions with object schemas", () => {
    assert.deepEqual(
      MAZE_TOOLS.map((t) => t.name),
      [
        "break_wall",
        "break_walls",
        "speed_boost",
        "slow_germs",
        "freeze_germs",
        "teleport_player",
        "spawn_oxygen",
        "move_exit",
        "highlight_zone",
        "reveal_map",
      ],
    );
    for (const tool of MAZE_TOOLS) {
      assert.equal(tool.parameters.type, "object", tool.name);
      assert.ok(tool.description.length > 10, tool.name);
      const properties = tool.parameters.properties as Record<string, unknown>;
      for (const required of tool.parameters.required as string[]) assert.ok(required in properties);
    }
    const breakWall = MAZE_TOOLS[0]!.parameters;
    assert.deepEqual(breakWall.required, ["x", "y"]);
    assert.deepEqual(MAZE_TOOLS[9]!.parameters.required, ["enabled"]);
  });
});

describe("toolCallsToMazeAction", () => {
  test("hint only, trimmed, empty when there is no text", () => {
    assert.deepEqual(toolCallsToMazeAction("  go left \n", []), { hint: "go left" });
    assert.deepEqual(toolCallsToMazeAction("", []), { hint: "" });
  });

  test("maps every tool", () => {
    const action = toolCallsToMazeAction("Try this", [
      call("break_wall", { x: 3, y: "4" }),
      call("break_walls", { walls: [[1, 2], { x: 3, y: 4 }, "bad", [5]] }),
      call("speed_boost", { duration_ms: 1500 }),
      call("slow_germs", { duration: "3000" }),
      call("freeze_germs", { duration_ms: 3500.7 }),
      call("teleport_player", { x: 0, y: 0 }),
      call("spawn_oxygen", { locations: [[1, 1]] }),
      call("move_exit", { x: 9, y: 8 }),
      call("highlight_zone", { cells: [{ x: 2, y: 2 }, [3, 3]], duration_ms: 5000 }),
      call("reveal_map", { enabled: true }),
      call("spawn_oxygen", { locations: [{ x: 2, y: 2 }] }),
    ]);
    assert.deepEqual(action, {
      hint: "Try this",
      break_wall: [3, 4],
      break_walls: [
        [1, 2],
        [3, 4],
      ],
      speed_boost_ms: 1500,
      slow_germs_ms: 3000,
      freeze_germs_ms: 3500,
      teleport_player: [0, 0],
      spawn_oxygen: [
        [1, 1],
        [2, 2],
      ],
      move_exit: [9, 8],
      highlight_zone: [
        [2, 2],
        [3, 3],
      ],
      highlight_ms: 5000,
      reveal_map: true,
    });
  });

  test("skips malformed calls and unknown tools without throwing", () => {
    const action = toolCallsToMazeAction("h", [
      call("break_wall", "{not json"),
      call("break_wall", { x: 1 }),
      call("teleport_player", { x: "left", y: 2 }),
      call("move_exit", "[1, 2]"),
      call("show_path", { x: 1, y: 2 }),
      call("toString", {}),
      call("__proto__", {}),
      call("speed_boost", {}),
      call("break_walls", { walls: "1,2" }),
      call("spawn_oxygen", { locations: [] }),
      call("reveal_map", { enabled: "sure" }),
      call("reveal_map", ""),
      call("highlight_zone", { cells: [["a", "b"]] }),
    ]);
    assert.deepEqual(action, { hint: "h" });
  });

  test("reads string booleans for reveal_map and lets a later call win", () => {
    assert.deepEqual(
      toolCallsToMazeAction("", [
        call("reveal_map", { enabled: "false" }),
        call("break_wall", { x: 1, y: 1 }),
        call("break_wall", { x: 2, y: 2 }),
      ]),
      { hint: "", reveal_map: false, break_wall: [2, 2] },
    );
  });

  test("formatMazeAction writes the original's JSON text", () => {
    assert.equal(
      formatMazeAction(" Go é ", [
        call("break_wall", { x: 1, y: 2 }),
        call("freeze_germs", { duration_ms: 100 }),
      ]),
      '{"hint": "Go é", "break_wall": [1, 2], "freeze_germs_ms": 100}',
    );
  });
});
