import type { ProjectCatalog } from "../config/projects.js";
import type { BridgeCommandName } from "../config/schema.js";
import type { GatewaySnapshot } from "../observability/snapshot.js";
import { isJsonObject, toBool, type JsonObject } from "../protocol/coerce.js";
import type { SessionManager } from "../sessions/manager.js";

export interface BridgeContext {
  projects: ProjectCatalog;
  sessions: SessionManager;
  snapshot: () => Promise<GatewaySnapshot>;
}

/** A refusal the caller can fix: reported as `{"status": "error", "error": message}`. */
export class CommandError extends Error {}

type Command = (args: JsonObject, ctx: BridgeContext) => Promise<unknown>;

/**
 * The operator API on `<base>/request/<command>`. Each command reads or changes gateway state and
 * returns the `data` of its response.
 */
export const COMMANDS: Readonly<Record<BridgeCommandName, Command>> = {
  projects: async (_args, { projects, sessions }) =>
    Promise.all(
      projects.names.map(async (name) => {
        const { responseFormat, sampling, rateLimitPerMinute, tools, toolChoice } = projects.get(name);
        return {
          name,
          systemPrompt: await sessions.projectPrompt(name),
          responseFormat,
          sampling,
          rateLimitPerMinute,
          tools: tools.map((tool) => tool.name),
          toolChoice,
        };
      }),
    ),

  sessions: async (args, { projects, sessions }) => {
    const names = args.project === undefined ? projects.names : [project(args, projects)];
    const out: Record<string, string[]> = {};
    for (const name of names) out[name] = await sessions.list(name);
    return out;
  },

  session_get: async (args, { projects, sessions }) => {
    const key = { project: project(args, projects), sessionId: sessionId(args) };
    const record = await sessions.read(key);
    if (!record) throw new CommandError(`no session ${key.sessionId} in project ${key.project}`);
    const { systemPrompt, history, createdAt, lastActiveAt } = record;
    return { ...key, systemPrompt, history, createdAt: iso(createdAt), lastActiveAt: iso(lastActiveAt) };
  },

  session_clear: async (args, { projects, sessions }) => ({
    cleared: await sessions.clear(project(args, projects), optionalSessionId(args)),
  }),

  session_delete: async (args, { projects, sessions }) => ({
    deleted: await sessions.delete(project(args, projects), optionalSessionId(args)),
  }),

  prompt_get: async (args, { projects, sessions }) => {
    const name = project(args, projects);
    return { project: name, systemPrompt: await sessions.projectPrompt(name) };
  },

  /** The project default and every session of the project, like a global template (A5). */
  prompt_set: async (args, { projects, sessions }) => {
    const name = project(args, projects);
    if (typeof args.systemPrompt !== "string" || args.systemPrompt.trim() === "") {
      throw new CommandError("systemPrompt must be a non-empty string");
    }
    const reset = args.reset === undefined ? true : toBool(args.reset);
    if (reset === undefined) throw new CommandError("reset must be true or false");
    const updated = await sessions.setProjectPrompt(name, args.systemPrompt.trim(), reset);
    return { project: name, sessionsUpdated: updated, reset };
  },

  servers: async (_args, { snapshot }) => (await snapshot()).servers,

  health: async (_args, { snapshot }) => snapshot(),
};

function project(args: JsonObject, projects: ProjectCatalog): string {
  if (typeof args.project !== "string" || !projects.names.includes(args.project)) {
    throw new CommandError(`project must be one of: ${projects.names.join(", ")}`);
  }
  return args.project;
}

function sessionId(args: JsonObject): string {
  const id = optionalSessionId(args);
  if (id === undefined) throw new CommandError("sessionId is required");
  return id;
}

function optionalSessionId(args: JsonObject): string | undefined {
  if (args.sessionId === undefined || args.sessionId === null) return undefined;
  if (typeof args.sessionId !== "string" || args.sessionId === "")
    throw new CommandError("sessionId must be a string");
  return args.sessionId;
}

function iso(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

/** The request payload: empty means no arguments. */
export function asArgs(value: unknown): JsonObject {
  if (value === undefined) return {};
  if (!isJsonObject(value)) throw new CommandError("the request payload must be a JSON object");
  return value;
}
