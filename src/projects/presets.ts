/**
 * Built-in projects, as data plus hooks. Each prompt is written for llmqtt; it keeps the intent
 * and the output form that the game clients of the original gateway parse. A config file's
 * `projects` entries override the data; the hooks come only from here.
 */

import type { SamplingParameters } from "../backends/types.js";
import type { Supersede } from "../config/schema.js";
import type { ProjectHooks } from "./hooks.js";
import { MAZE_HOOKS } from "./maze/hooks.js";
import { MAZE_ACTIONS, type ToolSet } from "./maze/tools.js";

export interface ProjectPreset {
  systemPrompt: string;
  /** Sampling defaults of the project, over the global ones. */
  sampling?: Partial<SamplingParameters>;
  /** Replies in the JSON envelope (PROTOCOL C1) unless a turn asks otherwise; default "text". */
  responseFormat?: "text" | "json";
  /** Every reply is JSON matching this schema (PROTOCOL C7), unless the project's tools are on. */
  responseSchema?: Readonly<Record<string, unknown>>;
  /** What a newer input does to an older one it makes stale (ProjectSettings.supersede); default "none". */
  supersede?: Supersede;
  /** Tools the project offers when tools are switched on (`mazeTools`). */
  tools?: ToolSet;
  hooks?: ProjectHooks;
}

const MAZE = `You are the helper inside a maze game. The player must reach the exit while avoiding germs and collecting oxygen.
Each user message is the current game state as JSON: player_pos and exit_pos are [x, y], visible_map is the part of the maze the player can see, germs and oxygen are lists of [x, y] cells, oxygen_collected is a count.
Answer with one JSON object and nothing else, of the form {"hint": "<one short, encouraging sentence>", "suggestion": "<one concrete next move, such as: go left twice, then up>"}.
Base the advice only on the state you were given. Keep the hint under 25 words.`;

const DRIVING = `You are Cap, a playful classmate playing a driving-physics game with the player. You think out loud together about speed, friction, braking distance and forces, but you never give the answer away: ask a question or drop a small clue instead.
Stay under 50 words. End every reply with the three tags <Cont or EOS><PlayerOp:x><AgentOP:y>, writing Cont if the conversation should go on or EOS if it is finished, and replacing x with the player's current opinion and y with yours.`;

const BLOODCELL = `You are a red blood cell and a classmate of the player in a game about the circulatory system. You are still learning, so you ask the player to explain things and learn from what they say.
Talk like a junior-high student, with casual slang. Keep every reply under 20 words.`;

const RACING = `You are a friendly teammate in a racing game about physics. Encourage the player and help them reason about force, mass and acceleration (F = m * a): why a heavier car speeds up more slowly, what more force does, how grip limits cornering.
Be supportive and brief, and let the player do the thinking.`;

const PROMPT_PORTAL = `You are the assistant behind a prompt-testing portal. Follow the instructions of the user's template exactly, including any output format it asks for. If no format is given, answer clearly and briefly.`;

const GENERAL = `You are a helpful assistant. Answer concisely and accurately; say so when you do not know.`;

const COMPLETION_SERVICE = `You continue text. Reply with only the continuation of the user's text: no preamble, no quotation marks, no explanation.`;

/** The reply MAZE asks for; its clients parse every hint as such an object. */
const MAZE_HINT = {
  type: "object",
  properties: { hint: { type: "string" }, suggestion: { type: "string" } },
  required: ["hint", "suggestion"],
  additionalProperties: false,
};

// Game replies are short, and a cap keeps a model that rambles from holding its slot: the original
// gateway capped them at 96 or 160 tokens unless a client said otherwise.
export const PRESETS: Readonly<Record<string, ProjectPreset>> = {
  // A hint for a state the player has left behind is of no use: the newest state cancels it.
  maze: {
    systemPrompt: MAZE,
    sampling: { maxTokens: 160 },
    responseSchema: MAZE_HINT,
    tools: MAZE_ACTIONS,
    hooks: MAZE_HOOKS,
    supersede: "running",
  },
  driving: { systemPrompt: DRIVING, sampling: { maxTokens: 160 } },
  bloodcell: { systemPrompt: BLOODCELL, sampling: { maxTokens: 96 } },
  racing: { systemPrompt: RACING, sampling: { maxTokens: 96 } },
  prompt_portal: { systemPrompt: PROMPT_PORTAL },
  general: { systemPrompt: GENERAL },
  completion_service: { systemPrompt: COMPLETION_SERVICE },
};

/** Unknown project names behave like `general`. */
export function presetFor(project: string): ProjectPreset {
  return PRESETS[project] ?? (PRESETS.general as ProjectPreset);
}

/** The hooks of a project by name; none for unknown names. */
export function hooksFor(project: string): ProjectHooks | undefined {
  return PRESETS[project]?.hooks;
}

/** True when the project takes game-state snapshots on `P/state` (PROTOCOL A3). */
export function hasStateTopic(project: string): boolean {
  return hooksFor(project)?.stateToUserTurn !== undefined;
}
