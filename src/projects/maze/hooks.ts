import type { ProjectHooks, ProjectState, HookTurn } from "../hooks.js";
import { mazeStateToUserTurn, stuckMarker } from "./state.js";

/** The maze session's repetition counters (PROTOCOL A3), kept as its project state. */
interface MazeCounters {
  /** The last snapshot (user turn) as sent, without any stuck marker. */
  lastState?: string;
  /** How many times in a row the last snapshot repeated the one before it. */
  stateRepeatCount: number;
  lastReply?: string;
  /** How many times in a row the model's reply repeated its previous reply. */
  assistantRepeatCount: number;
}

/**
 * The maze game: snapshots become user turns, only the newest snapshot of a session matters
 * (B8, C9), and a player who seems stuck gets the STUCK_CONTEXT marker. Chat turns on
 * `maze/user_input` are plain chat.
 */
export const MAZE_HOOKS: ProjectHooks = {
  stateToUserTurn: mazeStateToUserTurn,
  supersedes: (kind) => kind === "state",
  modelInput: (turn) => {
    if (turn.kind !== "state") return turn.content;
    const counters = afterSnapshot(turn);
    // Like the original gateway, the marker counts the repeats in a row, so a first repeat reads 2.
    if (counters.stateRepeatCount === 0 && counters.assistantRepeatCount === 0) return turn.content;
    return turn.content + stuckMarker(counters.stateRepeatCount + 1, counters.assistantRepeatCount + 1);
  },
  nextState: (turn, reply) => {
    if (turn.kind !== "state") return turn.state;
    const counters = afterSnapshot(turn);
    const assistantRepeatCount = counters.lastReply === reply ? counters.assistantRepeatCount + 1 : 0;
    return { ...counters, assistantRepeatCount, lastReply: reply };
  },
};

/** The counters once this snapshot has been seen: how often the same snapshot arrived in a row. */
function afterSnapshot(turn: HookTurn): MazeCounters {
  const previous = readCounters(turn.state);
  return {
    ...previous,
    stateRepeatCount: previous.lastState === turn.content ? previous.stateRepeatCount + 1 : 0,
    lastState: turn.content,
  };
}

/** The counters from a stored state, whatever it holds. */
function readCounters(state: ProjectState): MazeCounters {
  const count = (value: unknown): number =>
    Number.isInteger(value) && (value as number) > 0 ? (value as number) : 0;
  const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
  const counters: MazeCounters = {
    stateRepeatCount: count(state.stateRepeatCount),
    assistantRepeatCount: count(state.assistantRepeatCount),
  };
  const lastState = text(state.lastState);
  const lastReply = text(state.lastReply);
  if (lastState !== undefined) counters.lastState = lastState;
  if (lastReply !== undefined) counters.lastReply = lastReply;
  return counters;
}
