/** Maze actions the model can take through tool calls, and their reply form (PROTOCOL A9). */

import type { ChatResult, ToolCall, ToolDefinition } from "../../backends/types.js";
import {
  isJsonObject,
  toBool,
  toInt,
  toIntPair,
  toIntPairs,
  type JsonObject,
} from "../../protocol/coerce.js";
import { pyJson } from "../../protocol/pyjson.js";

const integer = (what: string) => ({ type: "integer", minimum: 0, description: what });
// One shape only: chat templates render anyOf poorly (functionary's fails outright) and small
// models follow a single shape more reliably. The mapping still accepts {"x", "y"} objects.
const cells = (what: string) => ({
  type: "array",
  description: `${what}, each as [x, y]`,
  items: { type: "array", items: { type: "integer" }, minItems: 2, maxItems: 2 },
});

function tool(name: string, description: string, properties: JsonObject, required: string[]): ToolDefinition {
  return { name, description, parameters: { type: "object", properties, required } };
}

export const MAZE_TOOLS: ToolDefinition[] = [
  tool(
    "break_wall",
    "Knock down the wall in one grid cell to open a new path.",
    { x: integer("column of the wall cell"), y: integer("row of the wall cell") },
    ["x", "y"],
  ),
  tool(
    "break_walls",
    "Knock down several wall cells in one action.",
    { walls: cells("wall cells to remove") },
    ["walls"],
  ),
  tool(
    "speed_boost",
    "Make the player move faster for a while.",
    { duration_ms: integer("how long the boost lasts, in milliseconds") },
    [],
  ),
  tool(
    "slow_germs",
    "Make the germs move more slowly for a while.",
    { duration_ms: integer("how long the germs stay slow, in milliseconds") },
    [],
  ),
  tool(
    "freeze_germs",
    "Stop the germs from moving at all for a while.",
    { duration_ms: integer("how long the germs stay frozen, in milliseconds") },
    [],
  ),
  tool(
    "teleport_player",
    "Move the player instantly to another cell.",
    { x: integer("destination column"), y: integer("destination row") },
    ["x", "y"],
  ),
  tool(
    "spawn_oxygen",
    "Place oxygen pellets for the player to collect.",
    { locations: cells("cells that get a pellet") },
    ["locations"],
  ),
  tool(
    "move_exit",
    "Relocate the maze exit to another cell.",
    { x: integer("new exit column"), y: integer("new exit row") },
    ["x", "y"],
  ),
  tool(
    "highlight_zone",
    "Mark some cells on the player's screen to draw attention to them.",
    { cells: cells("cells to mark"), duration_ms: integer("how long the marking stays, in milliseconds") },
    ["cells"],
  ),
  tool(
    "reveal_map",
    "Show or hide the whole maze instead of only the part the player has seen.",
    { enabled: { type: "boolean", description: "true shows the whole map, false hides it again" } },
    ["enabled"],
  ),
];

type Action = Record<string, unknown>;
type Apply = (args: JsonObject, action: Action) => void;

const setCell =
  (key: string): Apply =>
  (args, action) => {
    const cell = toIntPair(args);
    if (cell) action[key] = cell;
  };
// Models sometimes say `duration` instead of `duration_ms`; the original accepted both.
const durationOf = (args: JsonObject) => toInt(args.duration_ms ?? args.duration);
const setDuration =
  (key: string): Apply =>
  (args, action) => {
    const ms = durationOf(args);
    if (ms !== undefined) action[key] = ms;
  };

const APPLY: Readonly<Record<string, Apply>> = {
  break_wall: setCell("break_wall"),
  teleport_player: setCell("teleport_player"),
  move_exit: setCell("move_exit"),
  speed_boost: setDuration("speed_boost_ms"),
  slow_germs: setDuration("slow_germs_ms"),
  freeze_germs: setDuration("freeze_germs_ms"),
  break_walls: (args, action) => {
    const walls = toIntPairs(args.walls);
    if (walls.length > 0) action.break_walls = walls;
  },
  spawn_oxygen: (args, action) => {
    const locations = toIntPairs(args.locations);
    if (locations.length === 0) return;
    const earlier = Array.isArray(action.spawn_oxygen) ? (action.spawn_oxygen as unknown[]) : [];
    action.spawn_oxygen = [...earlier, ...locations];
  },
  highlight_zone: (args, action) => {
    const zone = toIntPairs(args.cells);
    if (zone.length > 0) action.highlight_zone = zone;
    setDuration("highlight_ms")(args, action);
  },
  reveal_map: (args, action) => {
    const enabled = toBool(args.enabled);
    if (enabled !== undefined) action.reveal_map = enabled;
  },
};

/**
 * The maze action object for a reply with tool calls: `hint` first, then one key per usable call.
 * Unknown tools and unusable arguments are skipped so one bad call never costs the whole reply.
 */
export function toolCallsToMazeAction(text: string, calls: readonly ToolCall[]): Action {
  const action: Action = { hint: text.trim() };
  for (const call of calls) {
    const apply = Object.hasOwn(APPLY, call.name) ? APPLY[call.name] : undefined;
    const args = parseArguments(call.arguments);
    if (apply && args) apply(args, action);
  }
  return action;
}

/** The reply text for a maze turn with tool calls, written as the original gateway wrote it. */
export function formatMazeAction(text: string, calls: readonly ToolCall[]): string {
  return pyJson(toolCallsToMazeAction(text, calls));
}

/** A set of tools a project may offer, and how a reply that used them is written. */
export interface ToolSet {
  tools: ToolDefinition[];
  replyText(result: ChatResult): string;
}

/** The maze actions (A9): a reply with tool calls becomes one action object. */
export const MAZE_ACTIONS: ToolSet = {
  tools: MAZE_TOOLS,
  replyText: (result) =>
    result.toolCalls.length > 0 ? formatMazeAction(result.text, result.toolCalls) : result.text,
};

function parseArguments(raw: string): JsonObject | undefined {
  if (raw.trim() === "") return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
