import { z } from "zod";

/**
 * The whole settings schema with its defaults. Every other module receives the parsed,
 * typed `Settings` (or the slice it needs), never raw strings.
 */

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

export const MqttSettingsSchema = z.strictObject({
  /** Full broker URL (mqtt://, mqtts://, ws://, wss://). Overrides host/port when given. */
  url: z.string().optional(),
  /** External broker host. With neither url nor host, llmqtt starts its embedded broker. */
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).default(1883),
  username: z.string().optional(),
  password: z.string().optional(),
  /**
   * Client id; default `llmqtt-<hostname>`. It names the broker-side session that keeps requests
   * while llmqtt restarts, so every instance needs its own.
   */
  clientId: z.string().min(1).optional(),
  /**
   * Start a fresh broker session on every connect. Off by default: the broker keeps the
   * subscriptions and queues QoS 1 requests while llmqtt is away, and delivers them on return.
   */
  clean: z.boolean().default(false),
  /**
   * QoS of llmqtt's subscriptions and of what it publishes. 1: every reply arrives at least once
   * (a broker restart may deliver one twice). 2: exactly once, for clients that subscribe with 2.
   */
  qos: z.union([z.literal(1), z.literal(2)]).default(1),
  /** MQTT 5: how long the broker keeps the session after a disconnect (3.1.1: the broker decides). */
  sessionExpirySec: nonNegativeInt.default(3600),
  /**
   * Shared subscription group: inputs are subscribed as `$share/<group>/<topic>`, so each request
   * goes to one of the instances in the group (scale-out; sessions then need the Redis store).
   */
  shareGroup: z
    .string()
    .min(1)
    .regex(/^[^/+#]+$/, "must not contain /, + or #")
    .optional(),
  tls: z
    .strictObject({
      /** CA certificate(s) to trust for the broker, PEM; default: the system's. */
      caFile: z.string().optional(),
      /** Client certificate and key for mutual TLS, PEM. */
      certFile: z.string().optional(),
      keyFile: z.string().optional(),
      /** Passphrase of an encrypted key. */
      keyPassphrase: z.string().optional(),
      /** Refuse a broker whose certificate does not verify (turn off only for testing). */
      rejectUnauthorized: z.boolean().default(true),
      /** Server name for SNI and certificate checking; default: the URL's host. */
      servername: z.string().optional(),
    })
    .default({ rejectUnauthorized: true }),
  keepaliveSec: nonNegativeInt.default(60),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
  reconnectPeriodMs: positiveInt.default(2000),
  /** TCP_NODELAY on the broker socket: avoids Nagle's delay on every small reply. */
  noDelay: z.boolean().default(true),
});

/** The embedded broker, used when no external broker is configured. */
export const BrokerSettingsSchema = z.strictObject({
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(1883),
  /** MQTT over WebSocket for browser games; 0 turns it off. */
  wsPort: z.number().int().min(0).max(65535).default(9001),
  username: z.string().optional(),
  password: z.string().optional(),
});

export const ServerSettingsSchema = z.strictObject({
  /** OpenAI-compatible server, with or without a trailing /v1. */
  url: z.string().default("http://localhost:8080"),
  apiKey: z.string().optional(),
  /** Model name sent in requests; llama-server ignores it. */
  model: z.string().default("default"),
  /** Per-turn deadline in seconds, retries included. */
  timeoutSec: z.number().positive().default(120),
  /** Parallel model calls; overrides what the server reports (llama-server /props total_slots). */
  slots: positiveInt.optional(),
  /** Share of the traffic when several servers form a pool (relative to the others). */
  weight: z.number().positive().optional(),
  /** Parallel model calls when the server does not report its slot count. */
  defaultSlots: positiveInt.default(4),
  /** Seconds between health probes of the model server. */
  probeIntervalSec: z.number().positive().default(10),
});

/** One model server of a pool; fields it leaves out come from `server`. */
export const BackendEntrySchema = z.strictObject({
  url: z.string(),
  apiKey: z.string().optional(),
  model: z.string().optional(),
  weight: z.number().positive().optional(),
  slots: positiveInt.optional(),
});

/** A model run inside llmqtt by node-llama-cpp instead of a model server. */
export const ModelSettingsSchema = z.strictObject({
  /** GGUF file, a model alias (qwen3-0.6b, ...), or `hf:<user>/<repo>/<file>`. */
  path: z
    .string()
    .min(1)
    .optional()
    .describe(
      "run this model inside llmqtt: a .gguf file, an alias llmqtt downloads (qwen3-0.6b, qwen3-0.6b-q4, qwen3-1.7b, qwen3-1.7b-q8), or hf:<user>/<repo>/<file>",
    ),
  /** Parallel sequences (turns answered at once). */
  slots: positiveInt.default(1),
  /** Context tokens per sequence; default: min(4096, the model's training context). */
  contextSize: positiveInt.optional(),
  /** CPU threads; default: half the logical CPUs (the library's default is far slower on small machines). */
  threads: positiveInt.optional(),
  gpu: z.enum(["off", "auto"]).default("off"),
  allowDownload: z
    .boolean()
    .optional()
    .describe(
      "true: download a missing model; false: never download; unset: an alias downloads when started from a terminal, hf: never",
    ),
  cacheDir: z
    .string()
    .optional()
    .describe("where downloaded models are kept (default: ~/.cache/llmqtt/models)"),
  hfEndpoint: z
    .string()
    .url()
    .optional()
    .describe(
      "Hugging Face or a mirror of it, for downloads (default: $HF_ENDPOINT, else https://huggingface.co)",
    ),
});

export const SamplingSettingsSchema = z.strictObject({
  temperature: z.number().min(0).max(2).default(1.2),
  topP: z.number().min(0).max(1).default(0.9),
  maxTokens: positiveInt.default(512),
  /** Upper bound a client's maxTokens is clamped to. */
  maxTokensLimit: positiveInt.default(8192),
});

export const SessionSettingsSchema = z.strictObject({
  /**
   * Where sessions live: `memory` (lost on restart), `sqlite` (a file; survives restarts),
   * `redis` (shared by several instances).
   */
  store: z.enum(["memory", "sqlite", "redis"]).default("sqlite"),
  sqlitePath: z.string().min(1).default("llmqtt-sessions.db"),
  redis: z
    .strictObject({
      url: z.string().default("redis://127.0.0.1:6379"),
      username: z.string().optional(),
      password: z.string().optional(),
      /** Prefix of every key llmqtt writes, so several deployments can share one Redis. */
      keyPrefix: z.string().default("llmqtt:"),
    })
    .default({ url: "redis://127.0.0.1:6379", keyPrefix: "llmqtt:" }),
  maxSessions: positiveInt.default(10_000),
  idleTimeoutSec: z.number().positive().default(3600),
  /** Budget for system prompt + history + new turn, in model tokens. */
  maxHistoryTokens: positiveInt.default(4096),
});

export const SchedulerSettingsSchema = z.strictObject({
  maxQueue: positiveInt.default(1000),
  /** Turns per minute allowed per session; 0 disables the limit. */
  rateLimitPerMinute: nonNegativeInt.default(0),
});

export const ShutdownSettingsSchema = z.strictObject({
  /** Seconds turns in flight get to finish on SIGTERM/SIGINT before the rest are answered with an error. */
  graceSec: z.number().nonnegative().default(10),
});

export const LimitSettingsSchema = z.strictObject({
  maxPayloadBytes: positiveInt.default(256 * 1024),
  maxMessageChars: positiveInt.default(32_000),
});

/** The bridge's request/response commands (PROTOCOL C5), each of which bridge.allow may leave out. */
export const BRIDGE_COMMANDS = [
  "projects",
  "sessions",
  "session_get",
  "session_clear",
  "session_delete",
  "prompt_get",
  "prompt_set",
  "servers",
  "health",
] as const;
export type BridgeCommandName = (typeof BRIDGE_COMMANDS)[number];

/** Operator topics: state, info, health and the request/response API (PROTOCOL C5). */
export const BridgeSettingsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  baseTopic: z
    .string()
    .min(1)
    .regex(/^[^+#]+$/, "must not contain + or #")
    .default("llmqtt/bridge"),
  /** Seconds between `health` messages; 0 = none. */
  healthIntervalSec: z.number().nonnegative().default(30),
  allow: z
    .array(z.enum(BRIDGE_COMMANDS))
    .default([...BRIDGE_COMMANDS])
    .describe(
      "bridge commands answered; the others are refused, e.g. leave out session_get and prompt_set (default: all)",
    ),
});

export const StreamingSettingsSchema = z.strictObject({
  /** Deltas arriving within this many ms go out as one chunk; 0 sends every delta. */
  flushIntervalMs: nonNegativeInt.default(50),
});

export const LoggingSettingsSchema = z.strictObject({
  level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** `pretty` for people at a terminal; `json` lines for log collectors. Default: pretty on a TTY. */
  format: z.enum(["json", "pretty"]).optional(),
  /** Write a rotating JSON-lines transcript of prompts and replies. */
  transcript: z.boolean().default(false),
  transcriptPath: z.string().default("llmqtt-transcript.jsonl"),
  transcriptMaxBytes: positiveInt.default(10 * 1024 * 1024),
  transcriptFiles: positiveInt.default(5),
  statsIntervalSec: z.number().nonnegative().default(60),
});

/** /healthz, /readyz, /metrics and the dashboard. */
export const HttpSettingsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().default("127.0.0.1"),
  /** 0 picks a free port (tests). */
  port: z.number().int().min(0).max(65535).default(8090),
  /** MQTT over WebSocket URL the playground connects to; default: the embedded broker's. */
  brokerWsUrl: z.string().optional(),
  token: z
    .string()
    .min(16, "use at least 16 characters, e.g. from `openssl rand -hex 24`")
    .optional()
    .describe(
      "bearer token every /api/* request (and so the dashboard and console) must carry; also tokenFile or LLMQTT_HTTP_TOKEN",
    ),
  protectMetrics: z
    .boolean()
    .default(false)
    .describe("require the token on /healthz, /readyz and /metrics too (default: false)"),
  insecure: z
    .boolean()
    .default(false)
    .describe("allow serving beyond loopback without a token, open to the whole network (default: false)"),
});

export const DEFAULT_PROJECTS = ["maze", "driving", "bloodcell", "racing", "prompt_portal", "general"];

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
    projects: z.array(ProjectEntrySchema).min(1).default(DEFAULT_PROJECTS),
    mqtt: MqttSettingsSchema.default(MqttSettingsSchema.parse({})),
    broker: BrokerSettingsSchema.default(BrokerSettingsSchema.parse({})),
    server: ServerSettingsSchema.default(ServerSettingsSchema.parse({})),
    model: ModelSettingsSchema.default(ModelSettingsSchema.parse({})),
    /** Several model servers; when given, `server` only supplies their defaults. */
    backends: z.array(BackendEntrySchema).optional(),
    sampling: SamplingSettingsSchema.default(SamplingSettingsSchema.parse({})),
    sessions: SessionSettingsSchema.default(SessionSettingsSchema.parse({})),
    scheduler: SchedulerSettingsSchema.default(SchedulerSettingsSchema.parse({})),
    limits: LimitSettingsSchema.default(LimitSettingsSchema.parse({})),
    shutdown: ShutdownSettingsSchema.default(ShutdownSettingsSchema.parse({})),
    logging: LoggingSettingsSchema.default(LoggingSettingsSchema.parse({})),
    http: HttpSettingsSchema.default(HttpSettingsSchema.parse({})),
    streaming: StreamingSettingsSchema.default(StreamingSettingsSchema.parse({})),
    bridge: BridgeSettingsSchema.default(BridgeSettingsSchema.parse({})),
    /** Ask the model not to think (chat_template_kwargs.enable_thinking = false). */
    skipThinking: z.boolean().default(true),
    /** Offer the maze action tools (A9) to the model on maze turns. */
    mazeTools: z.boolean().default(false),
    statusIntervalSec: z.number().positive().default(30),
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
