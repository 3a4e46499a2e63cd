import { InvalidArgumentError, Option } from "commander";
import { readConfigFile, resolveSecretFiles } from "./file.js";
import { buildSettings, mergeInputs, type SettingsInput } from "./load.js";
import type { Settings } from "./schema.js";

/**
 * Every `serve` flag in one table: its settings path, parser and help. Each flag also reads
 * the environment variable `LLMQTT_<FLAG_NAME>` (e.g. `--server-url` ← `LLMQTT_SERVER_URL`).
 */
interface FlagSpec {
  flags: string;
  description: string;
  /** Dotted path in the settings object. */
  path: string;
  parse?: (value: string, previous: unknown) => unknown;
}

export function parseBoolean(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: "${value}"`);
  return n;
}

/** `--server-url a --server-url b` or `--server-url a,b`: several model servers. */
function parseUrls(value: string, previous: unknown): string[] {
  const earlier = Array.isArray(previous) ? (previous as string[]) : [];
  return [...earlier, ...value.split(/[\s,]+/).filter(Boolean)];
}

/** `--projects maze driving`, `--projects maze,driving` and `LLMQTT_PROJECTS="maze driving"`. */
function parseList(value: string, previous: unknown): string[] {
  const earlier = Array.isArray(previous) ? (previous as string[]) : [];
  return [...earlier, ...value.split(/[\s,]+/).filter(Boolean)];
}

const FLAGS: FlagSpec[] = [
  {
    flags: "--projects <names...>",
    path: "projects",
    parse: parseList,
    description:
      "projects to serve, space or comma separated (default: maze driving bloodcell racing prompt_portal general)",
  },
  {
    flags: "--server-url <url>",
    path: "server.url",
    parse: parseUrls,
    description:
      "OpenAI-compatible model server, with or without /v1; repeat or comma-separate for a pool (default: http://localhost:8080)",
  },
  {
    flags: "--server-api-key-file <file>",
    path: "server.apiKeyFile",
    description: "read the model server's API key from this file",
  },
  {
    flags: "--server-api-key <key>",
    path: "server.apiKey",
    description: "API key for the model server, if it needs one",
  },
  {
    flags: "--server-model <name>",
    path: "server.model",
    description: "model name sent with each request (llama-server ignores it)",
  },
  {
    flags: "--server-timeout <seconds>",
    path: "server.timeoutSec",
    parse: parseNumber,
    description: "deadline for one turn, retries included (default: 120)",
  },
  {
    flags: "--server-slots <n>",
    path: "server.slots",
    parse: parseNumber,
    description:
      "model calls in flight at once; default: the server's total_slots from /props, else 4 (alias: --num-workers)",
  },
  {
    flags: "--model <file.gguf|alias>",
    path: "model.path",
    description:
      "run this model inside llmqtt (node-llama-cpp) instead of using a model server: a .gguf file, an alias llmqtt downloads (qwen3-0.6b, qwen3-0.6b-q4, qwen3-1.7b, qwen3-1.7b-q8), or hf:<user>/<repo>/<file> with --allow-download",
  },
  {
    flags: "--model-slots <n>",
    path: "model.slots",
    parse: parseNumber,
    description: "in-process model: turns answered at once (default: 1)",
  },
  {
    flags: "--model-context <tokens>",
    path: "model.contextSize",
    parse: parseNumber,
    description: "in-process model: context per slot (default: min(4096, the model's))",
  },
  {
    flags: "--model-threads <n>",
    path: "model.threads",
    parse: parseNumber,
    description: "in-process model: CPU threads (default: half the logical CPUs)",
  },
  {
    flags: "--model-gpu <off|auto>",
    path: "model.gpu",
    description: "in-process model: use a GPU if one is found (default: off)",
  },
  {
    flags: "--allow-download [bool]",
    path: "model.allowDownload",
    parse: parseBoolean,
    description:
      "true: download a missing model (aliases and hf:); false: never download (default: an alias downloads when started from a terminal)",
  },
  {
    flags: "--model-cache-dir <dir>",
    path: "model.cacheDir",
    description: "where downloaded models are kept (default: ~/.cache/llmqtt/models)",
  },
  {
    flags: "--model-hf-endpoint <url>",
    path: "model.hfEndpoint",
    description:
      "Hugging Face or a mirror of it, for downloads (default: $HF_ENDPOINT, else https://huggingface.co)",
  },
  {
    flags: "--temperature <t>",
    path: "sampling.temperature",
    parse: parseNumber,
    description: "default temperature, 0-2 (default: 1.2)",
  },
  {
    flags: "--top-p <p>",
    path: "sampling.topP",
    parse: parseNumber,
    description: "default top_p, 0-1 (default: 0.9)",
  },
  {
    flags: "--max-tokens <n>",
    path: "sampling.maxTokens",
    parse: parseNumber,
    description: "default max tokens per reply (default: 512)",
  },
  {
    flags: "--max-history-tokens <n>",
    path: "sessions.maxHistoryTokens",
    parse: parseNumber,
    description: "token budget for system prompt + history + new turn (default: 4096)",
  },
  {
    flags: "--max-sessions <n>",
    path: "sessions.maxSessions",
    parse: parseNumber,
    description:
      "sessions kept in memory, least recently used dropped first (default: 10000; alias: --max-concurrent-sessions)",
  },
  {
    flags: "--session-store <memory|sqlite|redis>",
    path: "sessions.store",
    description:
      "where conversations live: memory (lost on restart), sqlite (a file), redis (shared by instances) (default: sqlite)",
  },
  {
    flags: "--sqlite-path <file>",
    path: "sessions.sqlitePath",
    description: "session database file for --session-store sqlite (default: llmqtt-sessions.db)",
  },
  {
    flags: "--redis-url <url>",
    path: "sessions.redis.url",
    description: "Redis for --session-store redis (default: redis://127.0.0.1:6379)",
  },
  {
    flags: "--redis-password-file <file>",
    path: "sessions.redis.passwordFile",
    description: "read the Redis password from this file",
  },
  {
    flags: "--shutdown-grace <seconds>",
    path: "shutdown.graceSec",
    parse: parseNumber,
    description:
      "on SIGTERM/SIGINT, time turns in flight get to finish; queued turns are then answered 'shutting down' (default: 10)",
  },
  {
    flags: "--session-idle-timeout <seconds>",
    path: "sessions.idleTimeoutSec",
    parse: parseNumber,
    description: "forget a session idle this long (default: 3600)",
  },
  {
    flags: "--max-queue <n>",
    path: "scheduler.maxQueue",
    parse: parseNumber,
    description: "turns waiting before new ones are refused as overloaded (default: 1000)",
  },
  {
    flags: "--rate-limit <per-minute>",
    path: "scheduler.rateLimitPerMinute",
    parse: parseNumber,
    description: "turns per minute per session, 0 = no limit (default: 0)",
  },
  {
    flags: "--mqtt-broker <host>",
    path: "mqtt.host",
    description: "external MQTT broker host (default: none, llmqtt starts its embedded broker)",
  },
  {
    flags: "--mqtt-port <port>",
    path: "mqtt.port",
    parse: parseNumber,
    description: "MQTT broker port (default: 1883)",
  },
  {
    flags: "--mqtt-url <url>",
    path: "mqtt.url",
    description: "full broker URL instead of host/port: mqtt://, mqtts://, ws://, wss://",
  },
  { flags: "--mqtt-username <name>", path: "mqtt.username", description: "MQTT username" },
  { flags: "--mqtt-password <password>", path: "mqtt.password", description: "MQTT password" },
  {
    flags: "--mqtt-password-file <file>",
    path: "mqtt.passwordFile",
    description: "read the MQTT password from this file",
  },
  {
    flags: "--mqtt-client-id <id>",
    path: "mqtt.clientId",
    description:
      "MQTT client id; names the broker session that keeps requests while llmqtt restarts, one per instance (default: llmqtt-<hostname>)",
  },
  {
    flags: "--mqtt-clean [bool]",
    path: "mqtt.clean",
    parse: parseBoolean,
    description:
      "start a fresh broker session on each connect, dropping requests queued meanwhile (default: false)",
  },
  {
    flags: "--mqtt-qos <1|2>",
    path: "mqtt.qos",
    parse: parseNumber,
    description:
      "QoS of subscriptions and replies: 1 = at least once, 2 = exactly once for clients subscribing with QoS 2 (default: 1)",
  },
  {
    flags: "--mqtt-session-expiry <seconds>",
    path: "mqtt.sessionExpirySec",
    parse: parseNumber,
    description: "MQTT 5: how long the broker keeps llmqtt's session while it is away (default: 3600)",
  },
  {
    flags: "--share-group <name>",
    path: "mqtt.shareGroup",
    description:
      "scale-out: subscribe inputs as $share/<name>/..., so each request goes to one instance of the group (needs --session-store redis)",
  },
  {
    flags: "--mqtt-ca <file>",
    path: "mqtt.tls.caFile",
    description: "TLS: CA certificate(s) to trust for the broker, PEM (default: the system's)",
  },
  {
    flags: "--mqtt-cert <file>",
    path: "mqtt.tls.certFile",
    description: "mutual TLS: client certificate, PEM",
  },
  {
    flags: "--mqtt-key <file>",
    path: "mqtt.tls.keyFile",
    description: "mutual TLS: client key, PEM",
  },
  {
    flags: "--mqtt-reject-unauthorized [bool]",
    path: "mqtt.tls.rejectUnauthorized",
    parse: parseBoolean,
    description: "TLS: refuse a broker certificate that does not verify (default: true)",
  },
  {
    flags: "--mqtt-servername <name>",
    path: "mqtt.tls.servername",
    description: "TLS: server name for SNI and certificate checks (default: the broker URL's host)",
  },
  {
    flags: "--mqtt-keepalive <seconds>",
    path: "mqtt.keepaliveSec",
    parse: parseNumber,
    description: "MQTT keepalive (default: 60)",
  },
  {
    flags: "--mqtt-protocol-version <4|5>",
    path: "mqtt.protocolVersion",
    parse: parseNumber,
    description: "4 = MQTT 3.1.1 (default), 5 = MQTT 5",
  },
  {
    flags: "--broker-host <address>",
    path: "broker.host",
    description: "embedded broker: address to listen on (default: 127.0.0.1; 0.0.0.0 for the whole network)",
  },
  {
    flags: "--broker-port <port>",
    path: "broker.port",
    parse: parseNumber,
    description: "embedded broker: MQTT port (default: 1883)",
  },
  {
    flags: "--broker-ws-port <port>",
    path: "broker.wsPort",
    parse: parseNumber,
    description: "embedded broker: MQTT over WebSocket port for browsers, 0 = off (default: 9001)",
  },
  {
    flags: "--broker-username <name>",
    path: "broker.username",
    description: "embedded broker: require this username",
  },
  {
    flags: "--broker-password <password>",
    path: "broker.password",
    description: "embedded broker: and this password",
  },
  {
    flags: "--broker-password-file <file>",
    path: "broker.passwordFile",
    description: "embedded broker: read the password from this file",
  },
  {
    flags: "--stream-flush-ms <ms>",
    path: "streaming.flushIntervalMs",
    parse: parseNumber,
    description:
      "streamed replies: deltas arriving within this many ms share one MQTT message, 0 = every delta (default: 50)",
  },
  {
    flags: "--http [bool]",
    path: "http.enabled",
    parse: parseBoolean,
    description: "serve /healthz, /readyz, /metrics and the dashboard (default: true)",
  },
  {
    flags: "--http-host <address>",
    path: "http.host",
    description: "address of the HTTP endpoint (default: 127.0.0.1)",
  },
  {
    flags: "--http-port <port>",
    path: "http.port",
    parse: parseNumber,
    description: "port of the HTTP endpoint (default: 8090)",
  },
  {
    flags: "--http-token-file <file>",
    path: "http.tokenFile",
    description: "read the HTTP API's bearer token from this file",
  },
  {
    flags: "--http-token <token>",
    path: "http.token",
    description:
      "bearer token every /api/* request (dashboard, console) must carry; prefer --http-token-file or LLMQTT_HTTP_TOKEN",
  },
  {
    flags: "--http-protect-metrics [bool]",
    path: "http.protectMetrics",
    parse: parseBoolean,
    description: "require the token on /healthz, /readyz and /metrics too (default: false)",
  },
  {
    flags: "--http-insecure [bool]",
    path: "http.insecure",
    parse: parseBoolean,
    description: "allow --http-host beyond loopback without a token, open to the network (default: false)",
  },
  {
    flags: "--broker-ws-url <url>",
    path: "http.brokerWsUrl",
    description: "MQTT over WebSocket URL for the dashboard's playground (default: the embedded broker's)",
  },
  {
    flags: "--bridge [bool]",
    path: "bridge.enabled",
    parse: parseBoolean,
    description: "operator topics: state, info, health and request/response commands (default: true)",
  },
  {
    flags: "--bridge-topic <topic>",
    path: "bridge.baseTopic",
    description: "base topic of the operator topics (default: llmqtt/bridge)",
  },
  {
    flags: "--bridge-allow <commands...>",
    path: "bridge.allow",
    parse: parseList,
    description:
      "bridge commands answered, space or comma separated; leave out e.g. session_get and prompt_set (default: all)",
  },
  {
    flags: "--skip-thinking [bool]",
    path: "skipThinking",
    parse: parseBoolean,
    description: "ask the model not to think before answering (default: true)",
  },
  {
    flags: "--maze-tools [bool]",
    path: "mazeTools",
    parse: parseBoolean,
    description:
      "offer maze action tools (break_wall, ...) to the model; needs llama-server --jinja (default: false)",
  },
  {
    flags: "--max-payload-bytes <n>",
    path: "limits.maxPayloadBytes",
    parse: parseNumber,
    description: "largest accepted MQTT payload (default: 262144)",
  },
  {
    flags: "--log-level <level>",
    path: "logging.level",
    description: "fatal, error, warn, info, debug, trace or silent (default: info)",
  },
  {
    flags: "--log-format <format>",
    path: "logging.format",
    description:
      "json (one object per line) or pretty (for a terminal) (default: pretty on a terminal, else json)",
  },
  {
    flags: "--enable-debug-logging [bool]",
    path: "logging.transcript",
    parse: parseBoolean,
    description: "debug logs plus a rotating JSON-lines transcript of prompts and replies (default: false)",
  },
  {
    flags: "--transcript-path <file>",
    path: "logging.transcriptPath",
    description: "transcript file (default: llmqtt-transcript.jsonl)",
  },
  {
    flags: "--stats-interval <seconds>",
    path: "logging.statsIntervalSec",
    parse: parseNumber,
    description: "seconds between stats log lines, 0 = off (default: 60)",
  },
];

/** The original gateway's spellings that are not just snake_case of ours. */
const ALIASES: Record<string, string> = {
  "--num-workers": "--server-slots",
  "--max-concurrent-sessions": "--max-sessions",
};

/** Accepts `--server_url`, `--skip_thinking False` and the aliases above as their documented form. */
export function normalizeArgv(args: readonly string[]): string[] {
  return args.map((arg) => {
    if (!arg.startsWith("--")) return arg;
    const eq = arg.indexOf("=");
    const name = (eq === -1 ? arg : arg.slice(0, eq)).replaceAll("_", "-");
    const rest = eq === -1 ? "" : arg.slice(eq);
    return (ALIASES[name] ?? name) + rest;
  });
}

export function serveOptions(): Option[] {
  return FLAGS.map((spec) => {
    const option = new Option(spec.flags, spec.description).env(envName(spec.flags));
    if (spec.parse) option.argParser(spec.parse);
    return option;
  });
}

/** `--config <file>`: a YAML or JSON file holding any part of the settings. */
export function configOption(): Option {
  return new Option(
    "--config <file>",
    "settings file, YAML or JSON (flags and LLMQTT_* variables win over it)",
  ).env("LLMQTT_CONFIG");
}

/** Defaults < config file < environment < flags, secrets read from their files, validated. */
export function settingsFromOptions(options: Record<string, unknown>): Settings {
  const file = typeof options.config === "string" ? readConfigFile(options.config) : {};
  return buildSettings(resolveSecretFiles(mergeInputs(file, flagsToSettings(options))));
}

/** Turns commander's parsed options into a nested settings input. */
export function flagsToSettings(options: Record<string, unknown>): SettingsInput {
  const input: SettingsInput = {};
  for (const spec of FLAGS) {
    const value = options[new Option(spec.flags).attributeName()];
    if (value !== undefined) setPath(input, spec.path, value);
  }
  // Several --server-url values make a pool; one stays the plain server setting.
  const server = input.server as SettingsInput | undefined;
  if (Array.isArray(server?.url)) {
    const urls = server.url as string[];
    if (urls.length > 1) input.backends = urls.map((url) => ({ url }));
    server.url = urls[0];
  }
  // Debug logging also turns the log level to debug unless a level was given.
  if (options.enableDebugLogging === true && options.logLevel === undefined)
    setPath(input, "logging.level", "debug");
  return input;
}

function envName(flags: string): string {
  const long = flags.split(/[ ,]/).find((part) => part.startsWith("--")) ?? "";
  return "LLMQTT_" + long.slice(2).replaceAll("-", "_").toUpperCase();
}

function setPath(target: SettingsInput, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as SettingsInput;
  }
  node[keys[keys.length - 1] as string] = value;
}
