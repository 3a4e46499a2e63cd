import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { stringify as toYaml } from "yaml";
import type { SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { freePort, mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient, type GameClientTls } from "../support/gameClient.js";
import { startRig, type Rig } from "../support/harness.js";
import { captureLogs } from "../support/logCapture.js";
import { CLI, runNode } from "../support/processes.js";
import { testSettings } from "../support/settings.js";
import {
  connectedWithin,
  createTestPki,
  gameClientTls,
  opensslAvailable,
  tlsListener,
  type TestPki,
} from "../support/tls.js";

// CI installs Mosquitto (with mosquitto_passwd) and openssl, so there nothing is ever skipped.
const ON_CI = process.env.CI === "true";
const NO_MOSQUITTO = mosquittoAvailable() || ON_CI ? false : "mosquitto is not installed";
const NO_TLS_TOOLS =
  ON_CI || (opensslAvailable() && spawnSync("sh", ["-c", "command -v mosquitto_passwd"]).status === 0)
    ? false
    : "openssl or mosquitto_passwd is not installed";

const DOCS = fileURLToPath(new URL("../../../docs/mosquitto/", import.meta.url));

/** Distinct, unguessable strings, so finding one anywhere can only mean it leaked. */
function secret(name: string): string {
  return `${name}-${randomBytes(8).toString("hex")}`;
}

/** A Mosquitto password file made the way an operator makes one. */
function writePasswordFile(dir: string, users: Record<string, string>): string {
  const path = join(dir, "passwd");
  writeFileSync(path, "");
  for (const [user, password] of Object.entries(users)) {
    execFileSync("mosquitto_passwd", ["-b", path, user, password]);
  }
  // Mosquitto started as root reads it after dropping to its own user.
  chmodSync(path, 0o644);
  return path;
}

describe(
  "secrets never appear in logs, bridge topics or the status API",
  { skip: NO_MOSQUITTO || NO_TLS_TOOLS },
  () => {
    const passwords = { llmqtt: secret("mqtt-password"), "llmqtt-url": secret("url-password"), game: "game" };
    let pki: TestPki;
    let model: FakeModelServer;
    let broker: TestBroker;

    before(async () => {
      pki = createTestPki();
      model = await FakeModelServer.start();
      const passwordFile = writePasswordFile(pki.dir, passwords);
      broker = await startMosquitto({
        listener: tlsListener(pki, [
          "allow_anonymous false",
          `password_file ${passwordFile}`,
          "require_certificate true",
        ]),
        scheme: "mqtts",
      });
    });
    after(async () => {
      await broker.stop();
      await model.stop();
      pki.remove();
    });

    const credentialSources: [string, (port: number) => SettingsInput][] = [
      [
        "username and password settings",
        (port) => ({ url: `mqtts://127.0.0.1:${port}`, username: "llmqtt", password: passwords.llmqtt }),
      ],
      [
        "a password in the broker URL",
        (port) => ({ url: `mqtts://llmqtt-url:${passwords["llmqtt-url"]}@127.0.0.1:${port}` }),
      ],
    ];
    for (const [name, credentials] of credentialSources) {
      test(`MQTT credentials from ${name}, an API key and a key passphrase, at debug level`, async () => {
        const apiKey = secret("api-key");
        const secrets = [apiKey, pki.clientKeyPassphrase, passwords.llmqtt, passwords["llmqtt-url"]];
        const logs = captureLogs("debug");
        const settings = testSettings({
          projects: ["general"],
          mqtt: {
            ...credentials(broker.port),
            reconnectPeriodMs: 200,
            tls: {
              caFile: pki.caFile,
              certFile: pki.clientCertFile,
              keyFile: pki.encryptedClientKeyFile,
              keyPassphrase: pki.clientKeyPassphrase,
            },
          },
          server: { url: model.url, apiKey, probeIntervalSec: 0.2 },
          logging: { level: "debug", statsIntervalSec: 0 },
          http: { port: 0 },
        });
        const gateway = new Gateway(settings, { logger: logs.logger });
        const published: string[] = [];
        let game: GameClient | undefined;
        try {
          await connectedWithin(gateway);
          game = await GameClient.connect(
            `mqtts://game:${passwords.game}@127.0.0.1:${broker.port}`,
            ["general/assistant_response/#", "llmqtt/bridge/#"],
            gameClientTls(pki),
          );
          await game.publish("general/user_input", { sessionId: "secrets", message: "anything to hide?" });
          published.push((await game.next("general/assistant_response/secrets")).text);
          await game.publish("llmqtt/bridge/request/health", "");
          published.push((await game.next("llmqtt/bridge/response/health")).text);
          published.push((await game.next("llmqtt/bridge/info")).text);
          published.push(...game.messages.map((message) => message.text));
          published.push(await (await fetch(`${gateway.httpUrl}/api/status`)).text());
        } finally {
          await game?.close();
          await gateway.stop();
        }
        assert.equal(
          model.requests.at(-1)?.headers.authorization,
          `Bearer ${apiKey}`,
          "the API key was in use",
        );
        assert.ok(
          logs.lines().some((line) => line.msg === "llmqtt stopped"),
          "startup to shutdown was logged",
        );
        const everything = logs.text() + published.join("\n");
        for (const value of secrets)
          assert.ok(!everything.includes(value), `${value} leaked:\n${everything}`);
      });
    }
  },
);

describe("llmqtt config print", () => {
  test("masks passwords, API keys, key passphrases and passwords inside URLs, wherever they came from", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llmqtt-config-print-"));
    try {
      const secrets = {
        mqttPassword: secret("mqtt-password"),
        urlPassword: secret("url-password"),
        apiKey: secret("api-key"),
        backendApiKey: secret("backend-api-key"),
        backendUrlPassword: secret("backend-url-password"),
        keyPassphrase: secret("key-passphrase"),
        redisPassword: secret("redis-password"),
      };
      const file = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      const config = file(
        "llmqtt.yaml",
        toYaml({
          mqtt: { tls: { keyPassphraseFile: file("passphrase", secrets.keyPassphrase) } },
          backends: [
            { url: `http://llama:${secrets.backendUrlPassword}@gpu-1:8080`, apiKey: secrets.backendApiKey },
          ],
          sessions: { redis: { url: `redis://:${secrets.redisPassword}@127.0.0.1:6379` } },
        }),
      );
      const printed = await runNode(
        [
          CLI,
          "config",
          "print",
          ...["--config", config],
          ...["--mqtt-url", `mqtts://gateway:${secrets.urlPassword}@broker.example:8883`],
          ...[
            "--mqtt-username",
            "gateway",
            "--mqtt-password-file",
            file("mqtt-password", secrets.mqttPassword),
          ],
        ],
        { ...process.env, LLMQTT_SERVER_API_KEY: secrets.apiKey },
      );
      assert.equal(printed.code, 0, printed.stderr);
      for (const value of Object.values(secrets)) {
        assert.ok(!printed.stdout.includes(value), `${value} printed:\n${printed.stdout}`);
      }
      assert.match(printed.stdout, /keyPassphrase: "\*\*\*"/);
      assert.match(printed.stdout, /url: mqtts:\/\/gateway:\*\*\*@broker\.example:8883/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the default payload limit through Mosquitto", { skip: NO_MOSQUITTO }, () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startMosquitto();
    rig = await startRig(broker, { projects: ["general"] });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("a payload over the default 256 KiB limit gets an error reply, and the gateway keeps serving", async () => {
    rig.model.resetStats();
    await rig.game.publish("general/user_input", { sessionId: "big", message: "x".repeat(300 * 1024) });
    assert.match((await rig.game.next("general/assistant_response/big")).text, /^Error: Payload too large/);
    assert.equal(rig.model.requests.length, 0, "nothing reached the model");
    await rig.game.publish("general/user_input", { sessionId: "big", message: "and now?" });
    assert.equal((await rig.game.next("general/assistant_response/big")).text, "reply to: and now?");
  });
});

describe(
  "the documented Mosquitto configuration and ACL (docs/mosquitto)",
  { skip: NO_MOSQUITTO || NO_TLS_TOOLS },
  () => {
    const passwords = {
      llmqtt: secret("llmqtt"),
      racing: secret("racing"),
      maze: secret("maze"),
      monitor: secret("monitor"),
    };
    let pki: TestPki;
    let model: FakeModelServer;
    let broker: TestBroker;
    let gateway: Gateway;
    let trust: GameClientTls;
    const gameUrl = (user: keyof typeof passwords) =>
      `mqtts://${user}:${passwords[user]}@127.0.0.1:${broker.port}`;

    before(async () => {
      pki = createTestPki();
      model = await FakeModelServer.start();
      trust = gameClientTls(pki, { withCertificate: false });
      const aclFile = join(pki.dir, "acl");
      copyFileSync(join(DOCS, "acl"), aclFile);
      chmodSync(aclFile, 0o644);
      const files: Record<string, string> = {
        password_file: writePasswordFile(pki.dir, passwords),
        acl_file: aclFile,
        certfile: pki.serverCertFile,
        keyfile: pki.serverKeyFile,
      };
      const config = productionConfigForTest(
        readFileSync(join(DOCS, "mosquitto.conf"), "utf8"),
        files,
        await freePort(),
      );
      broker = await startMosquitto({
        listener: config,
        scheme: "mqtts",
      });
      gateway = new Gateway(
        testSettings({
          projects: ["racing", "maze"],
          mqtt: {
            url: broker.url,
            username: "llmqtt",
            password: passwords.llmqtt,
            reconnectPeriodMs: 200,
            tls: { caFile: pki.caFile },
          },
          server: { url: model.url, probeIntervalSec: 0.2 },
          logging: { level: process.env.LLMQTT_TEST_LOG ?? "silent", statsIntervalSec: 0 },
          http: { enabled: false },
        }),
      );
      await connectedWithin(gateway);
    });
    after(async () => {
      await gateway.stop();
      await broker.stop();
      await model.stop();
      pki.remove();
    });

    test("a game logged in as its user is answered, and sees its project's status", async () => {
      const racing = await GameClient.connect(
        gameUrl("racing"),
        ["racing/assistant_response/#", "racing/status"],
        trust,
      );
      try {
        await racing.publish("racing/user_input", { sessionId: "lap", message: "fastest line?" });
        assert.equal((await racing.next("racing/assistant_response/lap")).text, "reply to: fastest line?");
        assert.equal(JSON.parse((await racing.next("racing/status")).text).status, "online");
      } finally {
        await racing.close();
      }
    });

    test("a game receives no other project's replies, even when it subscribes to them", async () => {
      const racing = await GameClient.connect(
        gameUrl("racing"),
        ["racing/assistant_response/#", "maze/assistant_response/#", "maze/hint/#"],
        trust,
      );
      const maze = await GameClient.connect(gameUrl("maze"), ["maze/assistant_response/#"], trust);
      try {
        await maze.publish("maze/user_input", { sessionId: "m1", message: "which way?" });
        await maze.next("maze/assistant_response/m1");
        // Mosquitto delivers the gateway's publishes in order: a leaked maze reply would come first.
        await racing.publish("racing/user_input", { sessionId: "r1", message: "which gear?" });
        await racing.next("racing/assistant_response/r1");
        assert.deepEqual(
          racing.messages.filter((message) => message.topic.startsWith("maze/")),
          [],
        );
      } finally {
        await racing.close();
        await maze.close();
      }
    });

    test("a game may not publish replies, status, prompts or another project's input", async () => {
      // MQTT 5, so the broker's refusal comes back as a reason code instead of a silent drop.
      const racing = await mqtt.connectAsync(gameUrl("racing"), {
        ...trust,
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      try {
        for (const topic of [
          "racing/assistant_response/lap",
          "racing/status",
          "racing/template",
          "maze/user_input",
        ]) {
          await assert.rejects(racing.publishAsync(topic, "{}", { qos: 1 }), /Not authorized/, topic);
        }
        await racing.publishAsync(
          "racing/user_input",
          JSON.stringify({ sessionId: "ok", message: "allowed" }),
          {
            qos: 1,
          },
        );
      } finally {
        await racing.endAsync(true);
      }
    });

    test("a monitoring user gets health but may not ask for a conversation or change a prompt", async () => {
      const monitor = await mqtt.connectAsync(gameUrl("monitor"), {
        ...trust,
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      try {
        const responses: string[] = [];
        monitor.on("message", (topic) => responses.push(topic));
        await monitor.subscribeAsync("llmqtt/bridge/response/#", { qos: 1 });
        const answered = new Promise((resolve) =>
          monitor.on("message", (topic) => topic.endsWith("/health") && resolve(topic)),
        );
        await monitor.publishAsync("llmqtt/bridge/request/health", "{}", { qos: 1 });
        assert.equal(await answered, "llmqtt/bridge/response/health");
        for (const command of ["session_get", "sessions", "prompt_set", "session_clear"]) {
          await assert.rejects(
            monitor.publishAsync(`llmqtt/bridge/request/${command}`, '{"project":"racing"}', { qos: 1 }),
            /Not authorized/,
            command,
          );
        }
        assert.deepEqual(responses, ["llmqtt/bridge/response/health"]);
      } finally {
        await monitor.endAsync(true);
      }
    });
  },
);

/**
 * docs/mosquitto/mosquitto.conf with test ports and files in place of the production ones, less
 * its persistence lines: startMosquitto decides about persistence itself.
 */
function productionConfigForTest(text: string, files: Record<string, string>, webSocketPort: number): string {
  return text
    .split("\n")
    .filter((line) => !/^(persistence|persistence_location|autosave_interval)\s/.test(line))
    .map((line) => {
      const [directive, value] = line.split(/\s+/);
      if (directive === "listener")
        return value === "8883" ? "listener {port} 127.0.0.1" : `listener ${webSocketPort} 127.0.0.1`;
      const file = directive === undefined ? undefined : files[directive];
      return file === undefined ? line : `${directive} ${file}`;
    })
    .join("\n");
}
