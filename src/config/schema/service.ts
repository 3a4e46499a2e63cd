import { z } from "zod";
import { positiveInt, nonNegativeInt, seconds, port, flag, secret } from "./common.js";

/**
 * Settings schema sections, assembled in ../schema.ts:
 * sessions, scheduling, shutdown, limits, the bridge, streaming, logging and HTTP.
 */

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
  historyLowWater: z
    .number()
    .gt(0)
    .max(1)
    .default(0.5)
    .describe(
      "over the token budget, drop a session's oldest turns down to this share of it (0-1); until " +
        "the next trim each prompt extends the last, so the model server reuses its cache",
    )
    .meta(flag("--history-low-water")),
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
  maxSchemaBytes: positiveInt
    .default(16_384)
    .describe("largest responseSchema a request may carry, in bytes of JSON")
    .meta(flag("--max-schema-bytes")),
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
