/** Maze snapshots as model input (PROTOCOL A3). */

import { isJsonObject, toIntPairs, type JsonObject } from "../../protocol/coerce.js";
import { pyJson } from "../../protocol/pyjson.js";

/**
 * The canonical user turn for a `maze/state` snapshot: the original gateway's JSON text, key for
 * key and byte for byte, so prompts tuned against it keep working. Throws PyJsonDepthError for
 * absurdly nested input.
 */
export function mazeStateToUserTurn(obj: JsonObject): string {
  return pyJson({
    player_pos: position(obj.player_pos),
    exit_pos: position(obj.exit_pos),
    visible_map: obj.visible_map === undefined ? [] : obj.visible_map,
    germs: toIntPairs(obj.germs),
    oxygen: toIntPairs(obj.oxygenPellets),
    oxygen_collected: obj.oxygenCollected === undefined ? 0 : obj.oxygenCollected,
  });
}

// Coordinates here are passed on as given (not made integers), as the original did.
function position(value: unknown): unknown {
  if (value === undefined) return [0, 0];
  if (!isJsonObject(value)) return value;
  return [Object.hasOwn(value, "x") ? value.x : 0, Object.hasOwn(value, "y") ? value.y : 0];
}

const STUCK_INSTRUCTION =
  "The player seems stuck: the game state or your advice has repeated without progress. " +
  "Give a fresh hint or suggest a different action than before.";

/**
 * Text appended to a maze turn when the state or the model's reply keeps repeating, so the model
 * changes its advice instead of repeating it. Empty when nothing repeats.
 */
export function stuckMarker(stateRepeatCount: number, assistantRepeatCount: number): string {
  if (!(stateRepeatCount > 0) && !(assistantRepeatCount > 0)) return "";
  const context = pyJson({
    stuck: true,
    state_repeat_count: stateRepeatCount,
    assistant_repeat_count: assistantRepeatCount,
    instruction: STUCK_INSTRUCTION,
  });
  return `\n\nSTUCK_CONTEXT: ${context}`;
}
