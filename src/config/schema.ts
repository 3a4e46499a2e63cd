import { z } from "zod";
import type { SettingCli } from "./cliMeta.js";

/**
 * The whole settings schema with its defaults. Every other module receives the parsed,
 * typed `Settings` (or the slice it needs), never raw strings.
 */

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const seconds = z.number().nonnegative();
const port = z.number().int().min(0).max(65535);

/** Flag metadata (cliMeta.ts) for a field whose flag is not spelled from its path. */
const flag = (name: string, more: Omit<SettingCli, "flag"> = {}) => ({ cli: { flag: name, ...more } });
const secret = { cli: { secret: true } };

export const MqttSettingsSchema = z.strictObject({
  url: z.string().optional().describe("broker URL instead of host/port: mqtt[s]://, ws[s]://").meta(secret),
  host: z
    .string()
    .optional()
    .describe("external MQTT broker host (default: none, llmqtt starts its embedded broker)")
    .meta(flag("--mqtt-broker", { arg: "<host>" })),
  port: port.min(1).default(1883).describe("MQTT broker port"),
  username: z.string().optional().describe("MQTT username"),
  password: z.string().optional().describe("MQTT password").meta(secret),
  clientId: z
    .string()
    .min(1)
    .optional()
    .describe(
      "names the broker session that keeps requests while llmqtt restarts; one per instance (default: llmqtt-<hostname>)",
    ),
  clean: z.boolean().default(false).describe("fresh broker session on connect (loses queued requests)"),
  qos: z
    .union([z.literal(1), z.literal(2)])
    .default(1)
    .describe("QoS of subscriptions and replies: 1 = at least once, 2 = exactly once"),
  sessionExpirySec: nonNegativeInt
    .default(3600)
    .describe("MQTT 5: seconds the broker keeps llmqtt's session while it is away")
    .meta(flag("--mqtt-session-expiry")),
  shareGroup: z
    .string()
    .min(1)
    .regex(/^[^/+#]+$/, "must not contain /, + or #")
    .optional()
    .describe(
      "scale-out: inputs subscribed as $share/<name>/..., one instance gets each (needs the redis store)",
    )
    .meta(flag("--share-group", { arg: "<name>" })),
  tls: z
    .strictObject({
      caFile: z.string().optional().describe("TLS: CA certificate(s) to trust, PEM").meta(flag("--mqtt-ca")),
      certFile: z.string().optional().describe("mTLS: client certificate, PEM").meta(flag("--mqtt-cert")),
      keyFile: z.string().optional().describe("mTLS: client key, PEM").meta(flag("--mqtt-key")),
      keyPassphrase: z
        .string()
        .optional()
        .describe("passphrase of an encrypted client key")
        .meta(flag("--mqtt-key-passphrase", { secret: true })),
      rejectUnauthorized: z
        .boolean()
        .default(true)
        .describe("TLS: refuse a broker certificate that does not verify (false: for testing only)")
        .meta(flag("--mqtt-reject-unauthorized")),
      servername: z
        .string()
        .optional()
        .describe("TLS: name for SNI and certificate checks (default: the broker URL's host)")
        .meta(flag("--mqtt-servername", { arg: "<name>" })),
    })
    .default({ rejectUnauthorized: true }),
  keepaliveSec: nonNegativeInt.default(60).describe("MQTT keepalive, seconds").meta(flag("--mqtt-keepalive")),
  protocolVersion: z
    .union([z.literal(4), z.literal(5)])
    .default(4)
    .describe("4 = MQTT 3.1.1, 5 = MQTT 5"),
  reconnectPeriodMs: positiveInt.default(2000).describe("wait between reconnection attempts, ms"),
  /** Avoids Nagle's delay on every small reply. */
  noDelay: z.boolean().default(true).describe("TCP_NODELAY on the broker socket"),
});

export const BrokerSettingsSchema = z.strictObject({
  host: z.string().default("127.0.0.1").describe("address to listen on (0.0.0.0: the whole network)"),
  port: port.default(1883).describe("MQTT port"),
  wsPort: port.default(9001).describe("MQTT over WebSocket port for browser games, 0 = off"),
  username: z.string().optional().describe("username clients must give"),
  password: z.string().optional().describe("password clients must give").meta(secret),
});

export const ServerSettingsSchema = z.strictObject({
  url: z
    .string()
    .default("http://localhost:8080")
    .describe("OpenAI-compatible model server, with or without /v1; repeat or comma-separate for a pool")
    .meta({ cli: { list: true, arg: "<url>" } }),
  apiKey: z.string().optional().describe("API key of the model server, if it needs one").meta(secret),
  model: z.string().default("default").describe("model name sent with requests (llama-server ignores it)"),
  timeoutSec: z
    .number()
    .positive()
    .default(120)
    .describe("deadline for one turn, retries included, seconds")
    .meta(flag("--server-timeout")),
  slots: positiveInt
    .optional()
    .describe("model calls in flight at once (default: the server's total_slots from /props, else 4)")
    .meta({ cli: { aliases: ["--num-workers"] } }),
  weight: z.number().positive().optional().describe("share of a pool's traffic, relative to the others"),
  defaultSlots: positiveInt.default(4).describe("model calls in flight when the server does not say"),
  probeIntervalSec: z.number().positive().default(10).describe("seconds between health probes"),
});

/** One model server of a pool; fields it leaves out come from `server`. */
export const BackendEntrySchema = z.strictObject({
  url: z.string(),
  apiKey: z.string().optional().meta(secret),
  model: z.string().optional(),
  weight: z.number().positive().optional(),
  slots: positiveInt.optional(),
});

export const ModelSettingsSchema = z.strictObject({
  path: z
    .string()
    .min(1)
    .optional()
    .describe(
      "run this model inside llmqtt instead of using a model server: a .gguf file, an alias llmqtt downloads (qwen3-0.6b, qwen3-0.6b-q4, qwen3-1.7b, qwen3-1.7b-q8), or hf:<user>/<repo>/<file>",
    )
    .meta(flag("--model", { arg: "<file.gguf|alias>" })),
  slots: positiveInt.default(1).describe("turns answered at once"),
  contextSize: positiveInt
    .optional()
    .describe("context tokens per slot (default: min(4096, the model's))")
    .meta(flag("--model-context", { arg: "<tokens>" })),
  /** The library's own default is far slower on small machines. */
  threads: positiveInt.optional().describe("CPU threads (default: half the logical CPUs)"),
  gpu: z.enum(["off", "auto"]).default("off").describe("use a GPU if one is found"),
  allowDownload: z
    .boolean()
    .optional()
    .describe(
      "true: download a missing model (aliases and hf:); false: never download (default: an alias downloads when started from a terminal)",
    )
    .meta(flag("--allow-download")),
  cacheDir: z.string().optional().describe("downloaded models (default: ~/.cache/llmqtt/models)"),
  hfEndpoint: z
    .string()
    .url()
    .optional()
    .describe(
      "Hugging Face or a mirror of it, for downloads (default: $HF_ENDPOINT, else https://huggingface.co)",
    ),
});

export const SamplingSettingsSchema = z.strictObject({
  temperature: z.number().min(0).max(2).default(1.2).describe("temperature, 0-2").meta(flag("--temperature")),
  topP: z.number().min(0).max(1).default(0.9).describe("top_p, 0-1").meta(flag("--top-p")),
  maxTokens: positiveInt.default(512).describe("max tokens per reply").meta(flag("--max-tokens")),
  maxTokensLimit: positiveInt
    .default(8192)
    .describe("upper bound a client's maxTokens is clamped to")
    .meta(flag("--max-tokens-limit")),
});

export const SessionSettingsSchema = z.strictObject({
  store: z
    .enum(["memory", "sqlite", "redis"])
    .default("sqlite")
    .describe("where conversations live: memory (lost on restart), sqlite (a file), redis (shared)")
    .meta(flag("--session-store")),
  sqlitePath: z
    .string()
    .min(1)
    .default("llmqtt-sessions.db")
    .describe("file of the sqlite store")
    .meta(flag("--sqlite-path")),
  redis: z
    .strictObject({
      url: z
        .string()
        .default("redis://127.0.0.1:6379")
        .describe("Redis of the redis store (may hold a password)")
        .meta(flag("--redis-url", { secret: true })),
      username: z.string().optional().describe("Redis username").meta(flag("--redis-username")),
      password: z
        .string()
        .optional()
        .describe("Redis password")
        .meta(flag("--redis-password", { secret: true })),
      keyPrefix: z
        .string()
        .default("llmqtt:")
        .describe("prefix of every key llmqtt writes, so deployments can share one Redis")
        .meta(flag("--redis-key-prefix")),
    })
    .default({ url: "redis://127.0.0.1:6379", keyPrefix: "llmqtt:" }),
  maxSessions: positiveInt
    .default(10_000)
    .describe("sessions kept in memory, least recently used dropped first")
    .meta(flag("--max-sessions", { aliases: ["--max-concurrent-sessions"] })),
  idleTimeoutSec: z
    .number()
    .positive()
    .default(3600)
    .describe("forget a session idle this many seconds")
    .meta(flag("--session-idle-timeout")),
  maxHistoryTokens: positiveInt
    .default(4096)
    .describe("token budget of system prompt + history + new turn")
    .meta(flag("--max-history-tokens")),
});

export const SchedulerSettingsSchema = z.strictObject({
  maxQueue: positiveInt
    .default(1000)
    .describe("waiting turns before more are refused")
    .meta(flag("--max-queue")),
  rateLimitPerMinute: nonNegativeInt
    .default(0)
    .describe("turns per minute per session, 0 = no limit")
    .meta(flag("--rate-limit", { arg: "<per-minute>" })),
});

export const ShutdownSettingsSchema = z.strictObject({
  graceSec: seconds
    .default(10)
    .describe("on SIGTERM/SIGINT, seconds turns in flight get to finish before the rest get an error")
    .meta(flag("--shutdown-grace")),
});

export const LimitSettingsSchema = z.strictObject({
  maxPayloadBytes: positiveInt.default(262_144).describe("largest payload").meta(flag("--max-payload-bytes")),
  maxMessageChars: positiveInt.default(32_000).describe("longest message").meta(flag("--max-message-chars")),
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

export const BridgeSettingsSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe("operator topics: state, info, health and request/response commands")
    .meta(flag("--bridge")),
  baseTopic: z
    .string()
    .min(1)
    .regex(/^[^+#]+$/, "must not contain + or #")
    .default("llmqtt/bridge")
    .describe("base topic of the operator topics")
    .meta(flag("--bridge-topic")),
  healthIntervalSec: seconds.default(30).describe("seconds between health messages, 0 = none"),
  allow: z
    .array(z.enum(BRIDGE_COMMANDS))
    .default([...BRIDGE_COMMANDS])
    .describe("bridge commands answered, space or comma separated; leave out e.g. session_get and prompt_set")
    .meta({ cli: { list: true, arg: "<commands...>" } }),
});

export const StreamingSettingsSchema = z.strictObject({
  flushIntervalMs: nonNegativeInt
    .default(50)
    .describe("deltas arriving within this many ms share one MQTT message, 0 = every delta")
    .meta(flag("--stream-flush-ms")),
});

export const LoggingSettingsSchema = z.strictObject({
  level: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info")
    .describe("log level")
    .meta(flag("--log-level")),
  format: z
    .enum(["json", "pretty"])
    .optional()
    .describe("json: one object per line; pretty: for people (default: pretty on a terminal)")
    .meta(flag("--log-format")),
  transcript: z
    .boolean()
    .default(false)
    .describe("debug logs plus a rotating JSON-lines transcript of prompts and replies")
    .meta(flag("--enable-debug-logging")),
  transcriptPath: z
    .string()
    .default("llmqtt-transcript.jsonl")
    .describe("transcript file")
    .meta(flag("--transcript-path")),
  transcriptMaxBytes: positiveInt
    .default(10 * 1024 * 1024)
    .describe("transcript size that starts a new file")
    .meta(flag("--transcript-max-bytes")),
  transcriptFiles: positiveInt.default(5).describe("transcript files kept").meta(flag("--transcript-files")),
  statsIntervalSec: seconds
    .default(60)
    .describe("seconds between stats log lines, 0 = off")
    .meta(flag("--stats-interval")),
});

export const HttpSettingsSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe("serve health, metrics, the dashboard and the console")
    .meta(flag("--http")),
  host: z.string().default("127.0.0.1").describe("address of the HTTP endpoint"),
  port: port.default(8090).describe("port of the HTTP endpoint, 0 = a free one"),
  brokerWsUrl: z
    .string()
    .optional()
    .describe("MQTT over WebSocket URL for the playground (default: the embedded broker's)")
    .meta(flag("--broker-ws-url")),
  token: z
    .string()
    .min(16, "use at least 16 characters, e.g. from `openssl rand -hex 24`")
    .optional()
    .describe("bearer token every /api/* request (and so the dashboard and console) must carry")
    .meta(secret),
  protectMetrics: z
    .boolean()
    .default(false)
    .describe("require the token on /healthz, /readyz and /metrics too"),
  insecure: z
    .boolean()
    .default(false)
    .describe("allow serving beyond loopback without a token, open to the whole network"),
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
