import type { SamplingParameters, ToolDefinition } from "../backends/types.js";
import { NO_HOOKS, type ProjectHooks } from "../projects/hooks.js";
import { MAZE_ACTIONS, type ToolSet } from "../projects/maze/tools.js";
import { presetFor } from "../projects/presets.js";
import { compileReplySchema, SchemaError, type ReplySchema } from "../protocol/replySchema.js";
import { ConfigError } from "./load.js";
import type { ProjectSettings, ServerSettings, Settings, Supersede } from "./schema.js";

/** The model servers to use: the `backends` list with `server` defaults filled in, or `server` alone. */
export function modelServers(settings: Settings): ServerSettings[] {
  if (!settings.backends?.length) return [settings.server];
  return settings.backends.map((entry) => ({ ...settings.server, ...entry }));
}

/** Everything llmqtt needs to know about one project, resolved once at start-up. */
export interface Project {
  name: string;
  systemPrompt: string;
  responseFormat: "text" | "json";
  sampling: SamplingParameters;
  rateLimitPerMinute: number;
  /** The tools offered to the model on this project's turns; empty = none. */
  tools: ToolDefinition[];
  toolChoice: "auto" | "required";
  /** Every reply is JSON matching this schema (PROTOCOL C7); never with tools. */
  replySchema?: ReplySchema;
  /** What a newer input does to an older one of its session that it makes stale (see ProjectHooks.supersedes). */
  supersede: Supersede;
  /** The project's own behaviour beyond its data (projects/hooks.ts). */
  hooks: ProjectHooks;
}

/** The configured projects with presets and global defaults applied; unknown names act as `general`. */
export class ProjectCatalog {
  private readonly projects = new Map<string, Project>();

  constructor(settings: Settings) {
    for (const entry of settings.projects) {
      const spec: ProjectSettings = typeof entry === "string" ? { name: entry } : entry;
      if (this.projects.has(spec.name)) continue;
      const preset = presetFor(spec.name);
      // `mazeTools` switches on the project's own tools; a project without any may take the maze's.
      const toolSet = preset.tools ?? MAZE_ACTIONS;
      const tools = chooseTools(spec.name, toolSet, spec.mazeTools ?? (settings.mazeTools && !!preset.tools));
      const hooks = preset.hooks ?? NO_HOOKS;
      this.projects.set(spec.name, {
        name: spec.name,
        systemPrompt: spec.systemPrompt ?? preset.systemPrompt,
        responseFormat: spec.responseFormat ?? preset.responseFormat ?? "text",
        sampling: {
          temperature: spec.temperature ?? preset.sampling?.temperature ?? settings.sampling.temperature,
          topP: spec.topP ?? preset.sampling?.topP ?? settings.sampling.topP,
          maxTokens: spec.maxTokens ?? preset.sampling?.maxTokens ?? settings.sampling.maxTokens,
        },
        rateLimitPerMinute: spec.rateLimitPerMinute ?? settings.scheduler.rateLimitPerMinute,
        tools,
        toolChoice: spec.toolChoice ?? "auto",
        ...replySchema(spec, tools.length > 0, preset.responseSchema),
        supersede: spec.supersede ?? preset.supersede ?? "none",
        // A reply that used the tools is written the tool set's way.
        hooks: tools.length > 0 ? { ...hooks, replyText: toolSet.replyText } : hooks,
      });
    }
  }

  /** Project names in configured order; the first names the status topic. */
  get names(): string[] {
    return [...this.projects.keys()];
  }

  get(name: string): Project {
    const project = this.projects.get(name);
    if (!project) throw new Error(`unknown project ${name}`);
    return project;
  }

  /** Projects whose replies always use the JSON envelope. */
  get jsonProjects(): ReadonlySet<string> {
    return new Set([...this.projects.values()].filter((p) => p.responseFormat === "json").map((p) => p.name));
  }
}

/**
 * The project's reply schema: its own, else the preset's while its tools are off (a reply that used
 * the tools is the action JSON of PROTOCOL A9, which no schema describes).
 */
function replySchema(
  spec: ProjectSettings,
  hasTools: boolean,
  presetSchema: unknown,
): { replySchema?: ReplySchema } {
  const configured = spec.responseSchema ?? (hasTools ? undefined : presetSchema);
  if (configured === undefined || configured === false) return {};
  const setting = `projects.${spec.name}.responseSchema`;
  if (hasTools) {
    throw new ConfigError(
      `${setting}: the project's tools are on (mazeTools); a reply is either actions or JSON by a schema`,
    );
  }
  try {
    return { replySchema: compileReplySchema(`${spec.name}_reply`, configured, "config") };
  } catch (err) {
    if (err instanceof SchemaError) throw new ConfigError(`${setting}: ${err.message}`);
    throw err;
  }
}

function chooseTools(project: string, toolSet: ToolSet, choice: boolean | string[]): ToolDefinition[] {
  if (choice === false) return [];
  if (choice === true) return toolSet.tools;
  const unknown = choice.filter((name) => !toolSet.tools.some((tool) => tool.name === name));
  if (unknown.length > 0) {
    const known = toolSet.tools.map((tool) => tool.name).join(", ");
    throw new ConfigError(
      `projects.${project}.mazeTools: unknown tool ${unknown.join(", ")} (known: ${known})`,
    );
  }
  return toolSet.tools.filter((tool) => choice.includes(tool.name));
}
