import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { flagsToSettings, normalizeArgv, serveOptions } from "../../src/config/flags.js";
import { buildSettings, ConfigError, mergeInputs } from "../../src/config/load.js";
import type { Settings } from "../../src/config/schema.js";

function parse(args: string[]): Settings {
  const command = new Command("serve").exitOverride();
  for (const option of serveOptions()) command.addOption(option);
  command.parse(normalizeArgv(args), { from: "user" });
  return buildSettings(flagsToSettings(command.opts()));
}

describe("serve flags", () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of Object.keys(process.env)) if (key.startsWith("LLMQTT_")) delete process.env[key];
    Object.assign(process.env, saved);
  });

  test("defaults", () => {
    const s = parse([]);
    assert.deepEqual(s.projects, ["maze", "driving", "bloodcell", "racing", "prompt_portal", "general"]);
    assert.equal(s.server.url, "http://localhost:8080");
    assert.equal(s.sampling.temperature, 1.2);
    assert.equal(s.sampling.topP, 0.9);
    assert.equal(s.sampling.maxTokens, 512);
    assert.equal(s.mqtt.port, 1883);
    assert.equal(s.skipThinking, true);
    assert.equal(s.sessions.maxSessions, 10_000);
    assert.equal(s.sessions.idleTimeoutSec, 3600);
    assert.equal(s.scheduler.maxQueue, 1000);
    assert.equal(s.scheduler.rateLimitPerMinute, 0);
    assert.equal(s.mazeTools, false);
  });

  test("the original gateway's snake_case command line", () => {
    const s = parse([
      "--projects",
      "maze",
      "driving",
      "--server_url",
      "http://10.0.0.5:8080",
      "--server_timeout",
      "30",
      "--temperature",
      "0.7",
      "--top_p",
      "0.8",
      "--max_tokens",
      "256",
      "--max_history_tokens",
      "2000",
      "--max_concurrent_sessions",
      "500",
      "--mqtt_broker",
      "broker.local",
      "--mqtt_port",
      "1884",
      "--mqtt_username",
      "game",
      "--mqtt_password",
      "secret",
      "--num_workers",
      "6",
      "--skip_thinking",
      "False",
      "--enable_debug_logging",
    ]);
    assert.deepEqual(s.projects, ["maze", "driving"]);
    assert.equal(s.server.url, "http://10.0.0.5:8080");
    assert.equal(s.server.timeoutSec, 30);
    assert.equal(s.sampling.temperature, 0.7);
    assert.equal(s.sampling.topP, 0.8);
    assert.equal(s.sampling.maxTokens, 256);
    assert.equal(s.sessions.maxHistoryTokens, 2000);
    assert.equal(s.sessions.maxSessions, 500);
    assert.equal(s.mqtt.host, "broker.local");
    assert.equal(s.mqtt.port, 1884);
    assert.equal(s.mqtt.username, "game");
    assert.equal(s.mqtt.password, "secret");
    assert.equal(s.server.slots, 6);
    assert.equal(s.skipThinking, false);
    assert.equal(s.logging.transcript, true);
    assert.equal(s.logging.level, "debug");
  });

  test("comma-separated projects and --flag=value", () => {
    const s = parse(["--projects=maze,general", "--max-tokens=64"]);
    assert.deepEqual(s.projects, ["maze", "general"]);
    assert.equal(s.sampling.maxTokens, 64);
  });

  test("every flag reads LLMQTT_* from the environment; flags win", () => {
    process.env.LLMQTT_SERVER_URL = "http://env:1";
    process.env.LLMQTT_PROJECTS = "racing bloodcell";
    process.env.LLMQTT_SKIP_THINKING = "false";
    process.env.LLMQTT_MAX_TOKENS = "99";
    const s = parse(["--max-tokens", "11"]);
    assert.equal(s.server.url, "http://env:1");
    assert.deepEqual(s.projects, ["racing", "bloodcell"]);
    assert.equal(s.skipThinking, false);
    assert.equal(s.sampling.maxTokens, 11);
  });

  test("bad values are refused with the setting named", () => {
    assert.throws(() => parse(["--temperature", "warm"]), /not a number/);
    assert.throws(() => parse(["--skip-thinking", "maybe"]), /true or false/);
    assert.throws(
      () => parse(["--temperature", "7"]),
      (error: unknown) => error instanceof ConfigError && /sampling\.temperature/.test(error.message),
    );
  });
});

describe("reliability and scale-out flags", () => {
  test("broker session, QoS, TLS, stores and shutdown grace reach their settings", () => {
    const s = parse([
      "--mqtt-clean",
      "--mqtt-qos",
      "2",
      "--mqtt-session-expiry",
      "30",
      "--mqtt-ca",
      "/etc/ca.crt",
      "--mqtt-reject-unauthorized",
      "false",
      "--session-store",
      "redis",
      "--redis-url",
      "redis://r:6379",
      "--share-group",
      "llmqtt",
      "--shutdown-grace",
      "3",
    ]);
    assert.equal(s.mqtt.clean, true);
    assert.equal(s.mqtt.qos, 2);
    assert.equal(s.mqtt.sessionExpirySec, 30);
    assert.equal(s.mqtt.tls.caFile, "/etc/ca.crt");
    assert.equal(s.mqtt.tls.rejectUnauthorized, false);
    assert.equal(s.sessions.store, "redis");
    assert.equal(s.sessions.redis.url, "redis://r:6379");
    assert.equal(s.mqtt.shareGroup, "llmqtt");
    assert.equal(s.shutdown.graceSec, 3);
  });

  test("defaults keep the broker session and the conversations across restarts", () => {
    const s = parse([]);
    assert.equal(s.mqtt.clean, false);
    assert.equal(s.mqtt.qos, 1);
    assert.equal(s.sessions.store, "sqlite");
    assert.equal(s.shutdown.graceSec, 10);
  });

  test("a share group without the shared Redis store is refused, naming the setting", () => {
    assert.throws(
      () => parse(["--share-group", "llmqtt"]),
      (error: unknown) =>
        error instanceof ConfigError && /sessions\.store: a share group/.test(error.message),
    );
    assert.throws(() => parse(["--share-group", "a/b", "--session-store", "redis"]), /mqtt\.shareGroup/);
  });
});

describe("settings merge", () => {
  test("later sources win key by key; nested objects merge; arrays replace", () => {
    const merged = mergeInputs(
      { projects: ["a", "b"], server: { url: "x", timeoutSec: 5 } },
      { projects: ["c"], server: { url: "y" } },
    );
    assert.deepEqual(merged, { projects: ["c"], server: { url: "y", timeoutSec: 5 } });
  });
});
