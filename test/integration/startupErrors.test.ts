import assert from "node:assert/strict";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { freePort, mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { spawnGateway, uniqueClientId, type GatewayProcess } from "../support/gatewayProcess.js";
import { createTestPki, opensslAvailable, tlsListener, type TestPki } from "../support/tls.js";

const ON_CI = process.env.CI === "true";
const DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
const NO_MOSQUITTO = mosquittoAvailable() || ON_CI ? false : "mosquitto is not installed";
const NO_DYNSEC =
  existsSync(DYNSEC_PLUGIN) || ON_CI ? false : "Mosquitto's dynamic security plugin is not installed";
const NO_OPENSSL = opensslAvailable() || ON_CI ? false : "openssl is not installed";

/** Waits for the end of a start that must fail; its stderr is one line, which is returned. */
async function failedStart(gateway: GatewayProcess): Promise<string> {
  try {
    const ended = await Promise.race([gateway.exited, delay(30_000).then(() => "still running")]);
    assert.equal(ended, 2, gateway.output());
    const stderr = gateway.output().slice(gateway.output().lastIndexOf("}\n") + 2);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one error line: ${stderr}`);
    assert.ok(
      gateway.logs().every((line) => line.msg !== "MQTT error"),
      "the refusal is not also logged as a transient error",
    );
    return lines[0]!;
  } finally {
    await gateway.kill();
  }
}

/**
 * A Mosquitto with its dynamic security plugin (whose ACL, unlike an acl_file, refuses a
 * subscription in the SUBACK) and two users: `llmqtt` may do anything, `limited` only publish.
 */
async function startGuardedMosquitto(): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), "llmqtt-auth-"));
  const config = join(dir, "dynsec.json");
  const user = (username: string, password: string, rolename: string) => {
    const salt = randomBytes(12);
    const hash = pbkdf2Sync(password, salt, 101, 64, "sha512");
    const encoded = { password: hash.toString("base64"), salt: salt.toString("base64"), iterations: 101 };
    return { username, ...encoded, roles: [{ rolename }] };
  };
  const allow = (acltype: string) => ({ acltype, topic: "#", allow: true });
  const dynsec = {
    defaultACLAccess: {
      publishClientSend: false,
      publishClientReceive: true,
      subscribe: false,
      unsubscribe: true,
    },
    clients: [user("llmqtt", "secret", "all"), user("limited", "secret", "publisher")],
    groups: [],
    roles: [
      { rolename: "all", acls: [allow("publishClientSend"), allow("subscribePattern")] },
      { rolename: "publisher", acls: [allow("publishClientSend")] },
    ],
  };
  writeFileSync(config, JSON.stringify(dynsec));
  // Mosquitto drops root for its own user, which must be able to read it.
  chmodSync(dir, 0o755);
  chmodSync(config, 0o644);
  return startMosquitto({
    extraConfig: `plugin ${DYNSEC_PLUGIN}\nplugin_opt_config_file ${config}`,
    listener: "listener {port} 127.0.0.1\nallow_anonymous false",
  });
}

describe("llmqtt serve refused by the broker at start-up: one error line, exit status 2", () => {
  let model: FakeModelServer;

  before(async () => {
    model = await FakeModelServer.start();
  });
  after(() => model.stop());

  const serve = (url: string, ...args: string[]) =>
    spawnGateway([
      ...["--mqtt-url", url, "--mqtt-client-id", uniqueClientId("refused")],
      ...["--server-url", model.url, "--bridge", "false"],
      ...args,
    ]);

  describe("Mosquitto with users and an ACL", { skip: NO_MOSQUITTO || NO_DYNSEC }, () => {
    let broker: TestBroker;

    before(async () => {
      broker = await startGuardedMosquitto();
    });
    after(() => broker.stop());

    for (const version of ["4", "5"]) {
      test(`MQTT ${version === "4" ? "3.1.1" : "5"}: a wrong password names the credentials settings`, async () => {
        const line = await failedStart(
          serve(
            broker.url,
            "--mqtt-username",
            "llmqtt",
            "--mqtt-password",
            "wrong",
            "--mqtt-protocol-version",
            version,
          ),
        );
        assert.match(line, /^llmqtt: the MQTT broker at mqtt:\/\/127\.0\.0\.1:\d+ refused the connection: /);
        assert.match(line, /(bad user name or password|not authorised)/);
        assert.match(line, /--mqtt-username and --mqtt-password/);
        assert.doesNotMatch(line, /wrong/, "the password is not shown");
      });

      test(`MQTT ${version === "4" ? "3.1.1" : "5"}: a subscription the ACL refuses names the topics and the ACL`, async () => {
        const line = await failedStart(
          serve(
            broker.url,
            "--mqtt-username",
            "limited",
            "--mqtt-password",
            "secret",
            "--mqtt-protocol-version",
            version,
          ),
        );
        assert.match(line, /refused the subscription to general\/user_input, /);
        assert.match(line, /broker's ACL/);
      });
    }

    test("the right password: llmqtt starts", async () => {
      const gateway = serve(broker.url, "--mqtt-username", "llmqtt", "--mqtt-password", "secret");
      try {
        await gateway.waitForLog((line) => line.msg === "llmqtt ready");
        gateway.signal("SIGTERM");
        assert.equal(await gateway.exited, 0, gateway.output());
      } finally {
        await gateway.kill();
      }
    });
  });

  test("the embedded broker refusing the configured credentials", async () => {
    const port = String(await freePort());
    const gateway = spawnGateway([
      ...["--broker-port", port, "--broker-ws-port", "0", "--broker-username", "games"],
      ...["--broker-password", "right", "--mqtt-username", "games", "--mqtt-password", "wrong"],
      ...["--server-url", model.url, "--bridge", "false"],
    ]);
    const line = await failedStart(gateway);
    assert.match(
      line,
      /refused the connection: bad user name or password; check --mqtt-username and --mqtt-password/,
    );
  });

  describe("a broker whose certificate is not trusted", { skip: NO_OPENSSL || NO_MOSQUITTO }, () => {
    let pki: TestPki;
    let broker: TestBroker;

    before(async () => {
      pki = createTestPki();
      broker = await startMosquitto({ listener: tlsListener(pki), scheme: "mqtts" });
    });
    after(async () => {
      await broker.stop();
      pki.remove();
    });

    test("a CA that did not sign it names --mqtt-ca", async () => {
      const line = await failedStart(serve(broker.url, "--mqtt-ca", pki.unrelatedCaFile));
      assert.match(
        line,
        /^llmqtt: TLS with the MQTT broker at mqtts:\/\/127\.0\.0\.1:\d+ failed: .*certificate/,
      );
      assert.match(line, /set --mqtt-ca/);
    });

    test("a host name the certificate does not list names --mqtt-servername", async () => {
      const line = await failedStart(
        serve(broker.url, "--mqtt-ca", pki.caFile, "--mqtt-servername", "elsewhere.example"),
      );
      assert.match(line, /elsewhere\.example/);
      assert.match(line, /--mqtt-servername/);
    });
  });

  test("an unreachable broker is retried, saying so, and SIGTERM ends the wait with status 0", async () => {
    const gateway = serve(`mqtt://127.0.0.1:${await freePort()}`);
    try {
      await gateway.waitForLog((line) => line.msg === "MQTT broker unreachable; retrying");
      gateway.signal("SIGTERM");
      assert.equal(await gateway.exited, 0, gateway.output());
      assert.ok(gateway.logs().some((line) => line.msg === "llmqtt stopped"));
    } finally {
      await gateway.kill();
    }
  });
});
