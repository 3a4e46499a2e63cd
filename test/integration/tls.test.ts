import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { settingsFromOptions } from "../../src/config/flags.js";
import { ConfigError, type SettingsInput } from "../../src/config/load.js";
import type { Settings } from "../../src/config/schema.js";
import { Gateway } from "../../src/gateway.js";
import { StartupError } from "../../src/transport/startupErrors.js";
import { mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient, type GameClientTls } from "../support/gameClient.js";
import { CLI } from "../support/processes.js";
import { testSettings } from "../support/settings.js";
import {
  connectedWithin,
  createTestPki,
  gameClientTls,
  opensslAvailable,
  startSecureWebSocketBroker,
  tlsListener,
  type TestPki,
} from "../support/tls.js";
import { eventually } from "../support/wait.js";

// CI installs both, so there nothing is ever skipped.
const ON_CI = process.env.CI === "true";
const NO_OPENSSL = opensslAvailable() || ON_CI ? false : "openssl is not installed";
const NO_MOSQUITTO = mosquittoAvailable() || ON_CI ? false : "mosquitto is not installed";

describe("MQTT over TLS", { skip: NO_OPENSSL }, () => {
  let pki: TestPki;
  let model: FakeModelServer;
  let trustBroker: GameClientTls;
  let clientIdentity: GameClientTls;

  before(async () => {
    pki = createTestPki();
    model = await FakeModelServer.start();
    trustBroker = gameClientTls(pki, { withCertificate: false });
    clientIdentity = gameClientTls(pki);
  });
  after(async () => {
    await model.stop();
    pki.remove();
  });

  const settingsFor = (url: string, tls: SettingsInput): Settings =>
    testSettings({
      projects: ["general"],
      mqtt: { url, reconnectPeriodMs: 200, tls },
      server: { url: model.url, probeIntervalSec: 0.2, timeoutSec: 5 },
      logging: { level: process.env.LLMQTT_TEST_LOG ?? "silent", statsIntervalSec: 0 },
      http: { port: 0 },
    });

  /** Starts the gateway, has a game ask one question over TLS, and stops the gateway. */
  async function assertTurnAnswered(gateway: Gateway, url: string, gameTls: GameClientTls): Promise<void> {
    let game: GameClient | undefined;
    try {
      await connectedWithin(gateway);
      game = await GameClient.connect(url, ["general/assistant_response/#"], gameTls);
      const sessionId = `tls-${randomBytes(4).toString("hex")}`;
      await game.publish("general/user_input", { sessionId, message: "over TLS?" });
      assert.equal((await game.next(`general/assistant_response/${sessionId}`)).text, "reply to: over TLS?");
    } finally {
      await game?.close();
      await gateway.stop();
    }
  }

  /** The start fails with a StartupError naming the certificate problem and the flag to fix. */
  async function assertRefused(settings: Settings, problem: RegExp, fix: RegExp): Promise<void> {
    const gateway = new Gateway(settings);
    await assert.rejects(gateway.start(), (error: Error) => {
      assert.ok(error instanceof StartupError, String(error));
      assert.match(error.message, problem);
      assert.match(error.message, fix);
      return true;
    });
  }

  describe("a broker with a certificate (server-authenticated TLS)", { skip: NO_MOSQUITTO }, () => {
    let broker: TestBroker;

    before(async () => {
      broker = await startMosquitto({ listener: tlsListener(pki), scheme: "mqtts" });
    });
    after(() => broker.stop());

    test("trusting the CA that signed it: connected, a turn is answered", async () => {
      const gateway = new Gateway(settingsFor(broker.url, { caFile: pki.caFile }));
      await assertTurnAnswered(gateway, broker.url, trustBroker);
    });

    test("trusting an unrelated CA: the start fails naming the certificate problem and --mqtt-ca", async () => {
      await assertRefused(
        settingsFor(broker.url, { caFile: pki.unrelatedCaFile }),
        /certificate/,
        /--mqtt-ca/,
      );
    });

    test("rejectUnauthorized false connects despite the unrelated CA (for testing only)", async () => {
      const gateway = new Gateway(
        settingsFor(broker.url, { caFile: pki.unrelatedCaFile, rejectUnauthorized: false }),
      );
      await assertTurnAnswered(gateway, broker.url, trustBroker);
    });

    test("servername is the name verified when connecting by address", async () => {
      const byName = new Gateway(settingsFor(broker.url, { caFile: pki.caFile, servername: "localhost" }));
      await assertTurnAnswered(byName, broker.url, trustBroker);
      await assertRefused(
        settingsFor(broker.url, { caFile: pki.caFile, servername: "elsewhere.example" }),
        /elsewhere\.example.*altnames/,
        /--mqtt-servername/,
      );
    });
  });

  describe("a broker over secure WebSocket (wss://)", () => {
    let broker: TestBroker;

    before(async () => {
      broker = await startSecureWebSocketBroker(pki);
    });
    after(() => broker.stop());

    test("trusting the CA that signed it: a turn is answered", async () => {
      const gateway = new Gateway(settingsFor(broker.url, { caFile: pki.caFile }));
      await assertTurnAnswered(gateway, broker.url, trustBroker);
    });

    test("servername is verified here too", async () => {
      await assertRefused(
        settingsFor(broker.url, { caFile: pki.caFile, servername: "elsewhere.example" }),
        /elsewhere\.example.*altnames/,
        /--mqtt-servername/,
      );
    });
  });

  describe("a broker that requires client certificates (mutual TLS)", { skip: NO_MOSQUITTO }, () => {
    let broker: TestBroker;

    before(async () => {
      broker = await startMosquitto({
        listener: tlsListener(pki, ["allow_anonymous true", "require_certificate true"]),
        scheme: "mqtts",
      });
    });
    after(() => broker.stop());

    test("with a client certificate and key: a turn is answered", async () => {
      const gateway = new Gateway(
        settingsFor(broker.url, {
          caFile: pki.caFile,
          certFile: pki.clientCertFile,
          keyFile: pki.clientKeyFile,
        }),
      );
      await assertTurnAnswered(gateway, broker.url, clientIdentity);
    });

    test("without one: the start fails saying a certificate is required", async () => {
      await assertRefused(
        settingsFor(broker.url, { caFile: pki.caFile }),
        /certificate required/,
        /--mqtt-cert/,
      );
    });

    test("an encrypted key with keyPassphrase: a turn is answered", async () => {
      const gateway = new Gateway(
        settingsFor(broker.url, {
          caFile: pki.caFile,
          certFile: pki.clientCertFile,
          keyFile: pki.encryptedClientKeyFile,
          keyPassphrase: pki.clientKeyPassphrase,
        }),
      );
      await assertTurnAnswered(gateway, broker.url, clientIdentity);
    });

    test("an encrypted key with keyPassphraseFile from a config file: a turn is answered", async () => {
      const passphraseFile = join(pki.dir, "key-passphrase");
      writeFileSync(passphraseFile, `${pki.clientKeyPassphrase}\n`);
      const configFile = join(pki.dir, "llmqtt.json");
      writeFileSync(
        configFile,
        JSON.stringify({
          projects: ["general"],
          server: { url: model.url, probeIntervalSec: 0.2, timeoutSec: 5 },
          sessions: { store: "memory" },
          http: { enabled: false },
          logging: { level: "silent", statsIntervalSec: 0 },
          mqtt: {
            url: broker.url,
            clientId: `llmqtt-tls-file-${randomBytes(4).toString("hex")}`,
            reconnectPeriodMs: 200,
            tls: {
              caFile: pki.caFile,
              certFile: pki.clientCertFile,
              keyFile: pki.encryptedClientKeyFile,
              keyPassphraseFile: passphraseFile,
            },
          },
        }),
      );
      const settings = settingsFromOptions({ config: configFile });
      assert.equal(settings.mqtt.tls.keyPassphrase, pki.clientKeyPassphrase);
      await assertTurnAnswered(new Gateway(settings), broker.url, clientIdentity);
    });

    test("llmqtt serve as a process with --mqtt-ca, --mqtt-cert and --mqtt-key answers a turn", async () => {
      const game = await GameClient.connect(
        broker.url,
        ["general/status", "general/assistant_response/#"],
        clientIdentity,
      );
      const child = spawn(
        process.execPath,
        [
          CLI,
          "serve",
          ...["--mqtt-url", broker.url],
          ...["--mqtt-ca", pki.caFile, "--mqtt-cert", pki.clientCertFile, "--mqtt-key", pki.clientKeyFile],
          ...["--mqtt-client-id", `llmqtt-tls-cli-${randomBytes(4).toString("hex")}`],
          ...["--server-url", model.url, "--projects", "general"],
          ...["--session-store", "memory", "--http", "false", "--log-level", "warn"],
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      try {
        await eventually(
          () =>
            game.messages.some((m) => m.topic === "general/status" && JSON.parse(m.text).status === "online"),
          15_000,
          () => output,
        );
        await game.publish("general/user_input", { sessionId: "cli", message: "mutual?" });
        assert.equal((await game.next("general/assistant_response/cli")).text, "reply to: mutual?");
        const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
        child.kill("SIGTERM");
        assert.equal(await exited, 0, output);
      } finally {
        child.kill("SIGKILL");
        await game.close();
      }
    });
  });

  describe("TLS settings that cannot work stop the start with a ConfigError", () => {
    // Nothing listens here: each error must come before any connection attempt.
    const url = "mqtts://127.0.0.1:1";

    const startError = async (tls: SettingsInput): Promise<ConfigError> => {
      const gateway = new Gateway(settingsFor(url, tls));
      try {
        await gateway.start();
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        return error;
      } finally {
        await gateway.stop();
      }
      assert.fail("start() succeeded");
    };

    test("a CA file that does not exist is named", async () => {
      const error = await startError({ caFile: join(pki.dir, "missing-ca.crt") });
      assert.match(error.message, /^mqtt\.tls\.caFile: cannot read .*missing-ca\.crt/);
    });

    test("a client certificate without its key", async () => {
      const error = await startError({ caFile: pki.caFile, certFile: pki.clientCertFile });
      assert.match(error.message, /certFile and keyFile go together/);
    });

    test("an encrypted key without the right passphrase", async () => {
      const withKey = {
        caFile: pki.caFile,
        certFile: pki.clientCertFile,
        keyFile: pki.encryptedClientKeyFile,
      };
      for (const tls of [withKey, { ...withKey, keyPassphrase: "not the passphrase" }]) {
        assert.match((await startError(tls)).message, /mqtt\.tls\.keyPassphrase is missing or wrong/);
      }
    });

    test("a key that does not belong to the certificate", async () => {
      const error = await startError({ certFile: pki.serverCertFile, keyFile: pki.clientKeyFile });
      assert.match(error.message, /key values mismatch/);
    });
  });
});
