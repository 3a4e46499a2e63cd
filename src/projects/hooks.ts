import type { ChatResult } from "../backends/types.js";
import type { JsonObject } from "../protocol/coerce.js";
import type { TurnKind } from "../protocol/types.js";

/**
 * A project's own per-session state (the maze's stuck counters, say): stored with the session as
 * JSON, cleared with its history, and read and written only by the project's hooks.
 */
export type ProjectState = Readonly<Record<string, unknown>>;

/** One turn as a project hook sees it. */
export interface HookTurn {
  kind: TurnKind;
  /** The user turn from the input: the chat message, or the snapshot made a user turn. */
  content: string;
  /** The session's project state before this turn. */
  state: ProjectState;
}

/**
 * What makes a project more than a system prompt. Every hook is optional; a project without
 * hooks is a plain chat.
 */
export interface ProjectHooks {
  /**
   * PROTOCOL A3: the user turn for a game-state snapshot (a JSON object). A project with this hook
   * takes snapshots on `P/state` and answers them on `P/hint`. May throw PyJsonDepthError.
   */
  stateToUserTurn?(snapshot: JsonObject): string;
  /**
   * True when a newer input of this kind makes an older one of the same session stale (the
   * project's `supersede` setting says what then happens to the older one); default: every kind.
   */
  supersedes?(kind: TurnKind): boolean;
  /** The user turn as the model gets it; default: as stored. */
  modelInput?(turn: HookTurn): string;
  /** The reply as published and stored, from the model's result; default: its text. */
  replyText?(result: ChatResult): string;
  /** The project state stored with the turn once it is answered; default: unchanged. */
  nextState?(turn: HookTurn, reply: string): ProjectState;
}

export const NO_HOOKS: ProjectHooks = Object.freeze({});
