import { z } from "zod";
import { positiveInt, nonNegativeInt } from "./schema/common.js";
import { MqttSettingsSchema, BrokerSettingsSchema } from "./schema/transport.js";
export { MqttSettingsSchema, BrokerSettingsSchema } from "./schema/transport.js";
import {
  ServerSettingsSchema,
  BackendEntrySchema,
  ModelSettingsSchema,
  SamplingSettingsSchema,
} from "./schema/models.js";
export {
  ServerSettingsSchema,
  BackendEntrySchema,
  ModelSettingsSchema,
  SamplingSettingsSchema,
} from "./schema/models.js";
import {
  SessionSettingsSchema,
  SchedulerSettingsSchema,
  ShutdownSettingsSchema,
  LimitSettingsSchema,
  BridgeSettingsSchema,
  StreamingSettingsSchema,
  LoggingSettingsSchema,
  HttpSettingsSchema,
} from "./schema/service.js";
export {
  SessionSettingsSchema,
  SchedulerSettingsSchema,
  ShutdownSettingsSchema,
  LimitSettingsSchema,
  BRIDGE_COMMANDS,
  BridgeSettingsSchema,
  StreamingSettingsSchema,
  LoggingSettingsSchema,
  HttpSettingsSchema,
  type BridgeCommandName,
} from "./schema/service.js";

/**
 * The whole settings schema with its defaults. Every other module receives the parsed,
 * typed `Settings` (or the slice it needs), never raw strings. The sections live in ./schema/;
 * this module assembles them and is the one to import.
 */

export const DEFAULT_PROJECTS = ["maze", "driving", "bloodcell", "racing", "prompt_portal", "general"];

/** What a newer input does to an older one of its session (README: Cancellation). */
export const SupersedeSchema = z
  .enum(["none", "queued", "running"])
  .describe(
    "what a newer input of a session does to an older one (the maze: game states; others: every turn): none, queued (replaces it while it waits), running (also aborts it while it runs; the older one gets no reply). Default: running for maze, none otherwise",
  );
export type Supersede = z.infer<typeof SupersedeSchema>;

/** A project written out in full; a bare name means the preset (or `general`) with no overrides. */
export const ProjectSettingsSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .regex(/^[^+#]+$/, "must not contain + or #"),
  /** Replaces the preset's system prompt. */
  systemPrompt: z.string().min(1).optional(),
  /** `json`: every reply of this project uses the JSON envelope (PROTOCOL C1). */
  responseFormat: z.enum(["text", "json"]).optional(),
  temperature: z.number().min(0).max(2).optional(),
  topP: z.number().min(0).max(1).optional(),
  maxTokens: positiveInt.optional(),
  /** Turns per minute per session for this project; 0 = no limit. */
  rateLimitPerMinute: nonNegativeInt.optional(),
  /** Offer the maze action tools (A9) on this project's turns: all of them, or the named ones. */
  mazeTools: z.union([z.boolean(), z.array(z.string().min(1)).min(1)]).optional(),
  /** `required` makes the model call a tool on every turn (llama.cpp enforces it with a grammar). */
  toolChoice: z.enum(["auto", "required"]).optional(),
  /**
   * Every reply is JSON matching this JSON Schema (PROTOCOL C7); "json_object": any JSON object;
   * false: none, also where the preset has one.
   */
  responseSchema: z
    .union([z.literal("json_object"), z.literal(false), z.record(z.string(), z.unknown())])
    .optional(),
  supersede: SupersedeSchema.optional(),
});

const ProjectEntrySchema = z.union([
  z
    .string()
    .min(1)
    .regex(/^[^+#]+$/, "must not contain + or #"),
  ProjectSettingsSchema,
]);

export const SettingsSchema = z
  .strictObject({
    projects: z
      .array(ProjectEntrySchema)
      .min(1)
      .default(DEFAULT_PROJECTS)
      .describe("projects to serve, space or comma separated; the first names the status topic")
      .meta({ cli: { list: true, arg: "<names...>" } }),
    mqtt: MqttSettingsSchema.default(MqttSettingsSchema.parse({})).describe("External MQTT broker"),
    broker: BrokerSettingsSchema.default(BrokerSettingsSchema.parse({})).describe(
      "Embedded broker, used when no external broker is configured",
    ),
    server: ServerSettingsSchema.default(ServerSettingsSchema.parse({})).describe("Model server"),
    model: ModelSettingsSchema.default(ModelSettingsSchema.parse({})).describe(
      "Model inside llmqtt (node-llama-cpp)",
    ),
    backends: z
      .array(BackendEntrySchema)
      .optional()
      .describe(
        'several model servers as JSON, [{"url", "apiKey", "model", "weight", "slots"}, ...]; server.* supplies their defaults',
      ),
    sampling: SamplingSettingsSchema.default(SamplingSettingsSchema.parse({})).describe(
      "Sampling defaults, which projects and requests may override",
    ),
    sessions: SessionSettingsSchema.default(SessionSettingsSchema.parse({})).describe("Sessions"),
    scheduler: SchedulerSettingsSchema.default(SchedulerSettingsSchema.parse({})).describe("Scheduler"),
    limits: LimitSettingsSchema.default(LimitSettingsSchema.parse({})).describe("Limits"),
    shutdown: ShutdownSettingsSchema.default(ShutdownSettingsSchema.parse({})).describe("Shutdown"),
    logging: LoggingSettingsSchema.default(LoggingSettingsSchema.parse({})).describe("Logging"),
    http: HttpSettingsSchema.default(HttpSettingsSchema.parse({})).describe(
      "HTTP endpoint: health, metrics and the dashboard",
    ),
    streaming: StreamingSettingsSchema.default(StreamingSettingsSchema.parse({})).describe(
      "Streamed replies",
    ),
    bridge: BridgeSettingsSchema.default(BridgeSettingsSchema.parse({})).describe(
      "Bridge: operator topics (PROTOCOL C5)",
    ),
    skipThinking: z
      .boolean()
      .default(true)
      .describe("ask the model not to think before answering (chat_template_kwargs.enable_thinking = false)"),
    mazeTools: z
      .boolean()
      .default(false)
      .describe("offer maze action tools (break_wall, ...) to the model; needs llama-server --jinja"),
    statusIntervalSec: z.number().positive().default(30).describe("seconds between status messages"),
  })
  .superRefine((settings, ctx) => {
    // MQTT 3.1.1 forbids a password without a username; brokers drop such a connection silently.
    for (const section of ["mqtt", "broker"] as const) {
      const { username, password } = settings[section];
      if (password !== undefined && username === undefined) {
        ctx.addIssue({
          code: "custom",
          path: [section, "password"],
          message: "a password needs a username too",
        });
      }
    }
    // Conversations and prompts are on the HTTP API: open to the network only when asked for explicitly.
    const { http } = settings;
    if (http.enabled && http.token === undefined && !http.insecure && !isLoopbackHost(http.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["http", "token"],
        message:
          `the HTTP endpoint would listen on ${http.host}, beyond this machine, with no access control: ` +
          "set a token (--http-token-file, LLMQTT_HTTP_TOKEN or --http-token), or --http-insecure to serve it open",
      });
    }
    // Instances of a share group each see part of every session's requests: only a shared store works.
    if (settings.mqtt.shareGroup !== undefined && settings.sessions.store !== "redis") {
      ctx.addIssue({
        code: "custom",
        path: ["sessions", "store"],
        message: "a share group (mqtt.shareGroup) needs the redis session store, shared by every instance",
      });
    }
  });

/** Addresses only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return name === "localhost" || name === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

export type Settings = z.infer<typeof SettingsSchema>;
export type ProjectSettings = z.infer<typeof ProjectSettingsSchema>;
export type MqttSettings = Settings["mqtt"];
export type BrokerSettings = Settings["broker"];
export type ServerSettings = Settings["server"];
export type SamplingSettings = Settings["sampling"];
export type SessionSettings = Settings["sessions"];
export type SchedulerSettings = Settings["scheduler"];
export type LimitSettings = Settings["limits"];
export type LoggingSettings = Settings["logging"];
export type TlsSettings = MqttSettings["tls"];
