import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { z } from "zod";
import {
  configOption,
  flagsToSettings,
  normalizeArgv,
  secretsOnCommandLine,
  serveOptions,
  settingsFromOptions,
} from "../../src/config/flags.js";
import { ConfigError, type SettingsInput } from "../../src/config/load.js";
import { SettingsSchema, type Settings } from "../../src/config/schema.js";
import { CLI } from "../support/processes.js";

const dir = mkdtempSync(join(tmpdir(), "llmqtt-generated-"));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function command(args: string[]): Command {
  const serve = new Command("serve").exitOverride().addOption(configOption());
  for (const option of serveOptions()) serve.addOption(option);
  return serve.parse(normalizeArgv(args), { from: "user" });
}

/** As `llmqtt serve` does it: file < environment < flags, told apart by commander's value sources. */
function parse(args: string[]): Settings {
  const serve = command(args);
  return settingsFromOptions(serve.opts(), (key) => serve.getOptionValueSource(key));
}

/** Every path of the schema that holds one value, found without the code under test. */
function leafPaths(schema: z.core.$ZodType, path: string[] = []): string[] {
  let node = schema;
  while (["default", "optional"].includes(node._zod.def.type)) {
    node = (node._zod.def as z.core.$ZodDefaultDef).innerType;
  }
  if (node._zod.def.type !== "object") return [path.join(".")];
  const shape = (node as z.core.$ZodObject)._zod.def.shape;
  return Object.entries(shape).flatMap(([key, field]) => leafPaths(field, [...path, key]));
}

function valueAt(input: SettingsInput, path: string): unknown {
  return path.split(".").reduce<unknown>((node, key) => (node as SettingsInput | undefined)?.[key], input);
}

function clearEnvironment(): void {
  for (const key of Object.keys(process.env)) if (key.startsWith("LLMQTT_")) delete process.env[key];
}

describe("flags and variables made from the schema", () => {
  afterEach(clearEnvironment);

  const leaves = leafPaths(SettingsSchema);
  const options = serveOptions();

  test("the walk finds every section", () => {
    assert.ok(leaves.length > 60, String(leaves.length));
    for (const path of [
      "sessions.redis.url",
      "mqtt.tls.keyPassphrase",
      "bridge.healthIntervalSec",
      "projects",
    ]) {
      assert.ok(leaves.includes(path), path);
    }
  });

  test("every setting has a flag and an LLMQTT_* variable, each its own", () => {
    // "1" is accepted by every parser: number, boolean, list, JSON and plain text.
    for (const option of options) process.env[option.envVar as string] = "1";
    const fromEnv = flagsToSettings(command([]).opts());
    const fromFlags = flagsToSettings(
      command(options.flatMap((option) => [option.long as string, "1"])).opts(),
    );
    for (const path of leaves) {
      assert.notEqual(valueAt(fromEnv, path), undefined, `no variable reaches ${path}`);
      assert.notEqual(valueAt(fromFlags, path), undefined, `no flag reaches ${path}`);
    }
    for (const option of options)
      assert.ok(option.description.length > 0, `${option.long} has no description`);
    const envs = options.map((option) => option.envVar);
    assert.equal(new Set(envs).size, envs.length);
    for (const option of options) {
      assert.equal(option.envVar, "LLMQTT_" + option.long?.slice(2).replaceAll("-", "_").toUpperCase());
    }
  });

  test("nested settings by environment: the variable is named after the flag", () => {
    process.env.LLMQTT_REDIS_KEY_PREFIX = "game:";
    process.env.LLMQTT_MQTT_REJECT_UNAUTHORIZED = "false";
    process.env.LLMQTT_BRIDGE_HEALTH_INTERVAL_SEC = "5";
    process.env.LLMQTT_BACKENDS = '[{"url": "http://a:1"}, {"url": "http://b:2", "weight": 3}]';
    const s = parse([]);
    assert.equal(s.sessions.redis.keyPrefix, "game:");
    assert.equal(s.mqtt.tls.rejectUnauthorized, false);
    assert.equal(s.bridge.healthIntervalSec, 5);
    assert.deepEqual(s.backends, [{ url: "http://a:1" }, { url: "http://b:2", weight: 3 }]);
  });

  test("help shows each setting's description and the schema's own default", () => {
    const serve = new Command("serve").configureHelp({ helpWidth: 10_000 });
    for (const option of options) serve.addOption(option);
    const help = serve.helpInformation();
    const defaults = SettingsSchema.parse({});
    let checked = 0;
    for (const path of leaves) {
      const value = valueAt(defaults, path);
      if (value === undefined || (Array.isArray(value) && path !== "projects")) continue;
      const flag = options.find((option) => option.attributeName() === attributeOf(path, options))?.long;
      const line = help.split("\n").find((text) => text.trimStart().startsWith(`${flag} `));
      const shown = Array.isArray(value) ? value.join(" ") : String(value);
      assert.ok(line?.includes(`(default: ${shown})`), `${path}: ${line}`);
      checked++;
    }
    assert.ok(checked > 40, String(checked));
    assert.match(help, /--server-timeout <seconds> +deadline for one turn.*\(default: 120\)/);
    assert.match(help, /--redis-url <url> +Redis of the redis store/);
  });

  test("flags of the original gateway and of earlier llmqtt versions are all still there", () => {
    const longs = new Set(options.map((option) => option.long));
    const earlier = `projects server-url server-api-key server-api-key-file server-model server-timeout server-slots
      model model-slots model-context model-threads model-gpu allow-download model-cache-dir temperature top-p
      max-tokens max-history-tokens max-sessions session-store sqlite-path redis-url redis-password-file
      shutdown-grace session-idle-timeout max-queue rate-limit mqtt-broker mqtt-port mqtt-url mqtt-username
      mqtt-password mqtt-password-file mqtt-client-id mqtt-clean mqtt-qos mqtt-session-expiry share-group
      mqtt-ca mqtt-cert mqtt-key mqtt-reject-unauthorized mqtt-servername mqtt-keepalive mqtt-protocol-version
      broker-host broker-port broker-ws-port broker-username broker-password broker-password-file
      stream-flush-ms http http-host http-port broker-ws-url bridge bridge-topic skip-thinking maze-tools
      max-payload-bytes log-level log-format enable-debug-logging transcript-path stats-interval`;
    for (const name of earlier.split(/\s+/)) assert.ok(longs.has(`--${name}`), `--${name}`);
    assert.deepEqual(
      normalizeArgv(["--num_workers", "--max_concurrent_sessions=5", "--redis_password_file"]),
      ["--server-slots", "--max-sessions=5", "--redis-password-file"],
    );
  });
});

describe("precedence and secrets", () => {
  afterEach(clearEnvironment);

  test("defaults < config file < environment < flags, for nested settings too", () => {
    const config = write(
      "layers.yaml",
      'sessions:\n  redis:\n    keyPrefix: "file:"\n    url: redis://file:1\n  maxSessions: 7\nlogging:\n  level: warn\n',
    );
    process.env.LLMQTT_REDIS_KEY_PREFIX = "env:";
    process.env.LLMQTT_REDIS_URL = "redis://env:2";
    const s = parse(["--config", config, "--redis-key-prefix", "flag:"]);
    assert.equal(s.sessions.redis.keyPrefix, "flag:");
    assert.equal(s.sessions.redis.url, "redis://env:2");
    assert.equal(s.sessions.maxSessions, 7);
    assert.equal(s.logging.level, "warn");
    assert.equal(s.sessions.idleTimeoutSec, 3600);
  });

  test("secrets from files and the environment", () => {
    const password = write("mqtt-password", "s3cret\n");
    const redisUrl = write("redis-url", "redis://:pw@cache:6379\n");
    const passphrase = write("passphrase", "open sesame");
    process.env.LLMQTT_MQTT_PASSWORD_FILE = password;
    process.env.LLMQTT_REDIS_URL_FILE = redisUrl;
    process.env.LLMQTT_SERVER_API_KEY = "sk-env";
    const s = parse(["--mqtt-username", "game", "--mqtt-key-passphrase-file", passphrase]);
    assert.equal(s.mqtt.password, "s3cret");
    assert.equal(s.sessions.redis.url, "redis://:pw@cache:6379");
    assert.equal(s.server.apiKey, "sk-env");
    assert.equal(s.mqtt.tls.keyPassphrase, "open sesame");
    clearEnvironment();
    const config = write("pool.yaml", `backends:\n  - url: http://a:1\n    apiKeyFile: ${password}\n`);
    assert.equal(parse(["--config", config]).backends?.[0]?.apiKey, "s3cret");
  });

  test("a secret's file and its value: the later source wins; both in one source is refused", () => {
    const password = write("broker-password", "from-file");
    process.env.LLMQTT_BROKER_USERNAME = "u";
    process.env.LLMQTT_BROKER_PASSWORD = "from-env";
    assert.equal(parse(["--broker-password-file", password]).broker.password, "from-file");
    const config = write("secret.yaml", `broker:\n  passwordFile: ${password}\n`);
    assert.equal(parse(["--config", config]).broker.password, "from-env");
    assert.throws(
      () => parse(["--broker-password", "x", "--broker-password-file", password]),
      (error: unknown) => error instanceof ConfigError && /broker\.password: give either/.test(error.message),
    );
    assert.throws(
      () => parse(["--mqtt-password-file", join(dir, "missing")]),
      /mqtt\.passwordFile: cannot read/,
    );
  });

  test("a secret given as a flag is named for a warning; from a file, the environment or a URL without password it is not", () => {
    const sources = (args: string[]) => {
      const serve = command(args);
      return secretsOnCommandLine(serve.opts(), (key) => serve.getOptionValueSource(key));
    };
    assert.deepEqual(sources(["--mqtt_password", "x", "--server-api-key", "k"]), [
      "--mqtt-password",
      "--server-api-key",
    ]);
    assert.deepEqual(sources(["--redis-url", "redis://cache:6379", "--mqtt-url", "mqtt://b"]), []);
    assert.deepEqual(sources(["--redis-url", "redis://:pw@cache:6379"]), ["--redis-url"]);
    process.env.LLMQTT_MQTT_PASSWORD = "x";
    assert.deepEqual(sources([]), []);
  });

  test("llmqtt serve logs the warning and still uses the secret", async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        "serve",
        ...["--broker-port", "0", "--broker-ws-port", "0", "--http", "false", "--session-store", "memory"],
        ...[
          "--broker-username",
          "u",
          "--broker-password",
          "visible",
          "--log-format",
          "json",
          "--bridge",
          "false",
        ],
      ],
      { env: { ...process.env, LLMQTT_SERVER_PROBE_INTERVAL_SEC: "60" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit");
    try {
      while (!output.includes('"msg":"llmqtt ready"') && child.exitCode === null) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
    assert.match(
      output,
      /--broker-password is visible to every user of this machine.*LLMQTT_BROKER_PASSWORD/,
    );
    // The embedded broker took the password: llmqtt, its own first client, got in with it.
    assert.match(output, /"msg":"llmqtt ready"/);
  });
});

function attributeOf(path: string, options: Option[]): string | undefined {
  // The option a path is reached by: the one whose sole value lands there.
  for (const option of options) {
    const input = flagsToSettings({ [option.attributeName()]: "x" });
    if (valueAt(input, path) !== undefined) return option.attributeName();
  }
  return undefined;
}
