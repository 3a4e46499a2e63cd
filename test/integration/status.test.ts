import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { startRig } from "../support/harness.js";
import { CLI, runNode } from "../support/processes.js";

describe("service status (PROTOCOL A7)", () => {
  test("retained online on connect, retained offline after a clean stop", async () => {
    const broker = await startAedes();
    const rig = await startRig(broker, {
      projects: ["racing", "general"],
      mqtt: { clientId: "status-test" },
    });
    try {
      const online = JSON.parse((await rig.game.next("racing/status")).text);
      assert.equal(online.service, "status-test");
      assert.equal(online.status, "online");
      assert.equal(typeof online.ts, "number");

      await rig.stop();
      const late = await GameClient.connect(broker.url, ["racing/status"]);
      const retained = await late.next("racing/status");
      assert.equal(retained.retain, true);
      assert.deepEqual(JSON.parse(retained.text), { service: "status-test", status: "offline" });
      await late.close();
    } finally {
      await broker.stop();
    }
  });

  test("the last-will reports offline when the gateway dies without a clean stop", async () => {
    const broker = await startAedes();
    const model = await FakeModelServer.start();
    const watcher = await GameClient.connect(broker.url, ["general/status"]);
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: {
        ...process.env,
        LLMQTT_MQTT_URL: broker.url,
        LLMQTT_SERVER_URL: model.url,
        LLMQTT_PROJECTS: "general",
        LLMQTT_MQTT_CLIENT_ID: "doomed",
        LLMQTT_MQTT_KEEPALIVE: "1",
        LLMQTT_HTTP_PORT: "0",
        LLMQTT_SESSION_STORE: "memory",
      },
      stdio: "ignore",
    });
    try {
      assert.equal(JSON.parse((await watcher.next("general/status")).text).status, "online");
      child.kill("SIGKILL");
      const will = await watcher.next("general/status", 10_000);
      assert.deepEqual(JSON.parse(will.text), { service: "doomed", status: "offline" });
    } finally {
      child.kill("SIGKILL");
      await watcher.close();
      await model.stop();
      await broker.stop();
    }
  });
});

describe("llmqtt serve as a process", () => {
  test("configured by environment, answers a turn, exits 0 on SIGTERM with offline published", async () => {
    const broker = await startAedes();
    // A hint as the maze's reply schema wants it, made of the user turn the snapshot became.
    const model = await FakeModelServer.start({
      handler: (request) => ({
        text: JSON.stringify({ hint: request.body.messages.at(-1).content, suggestion: "up" }),
      }),
    });
    const game = await GameClient.connect(broker.url, ["maze/status", "maze/hint/#"]);
    const child = spawn(process.execPath, [CLI, "--projects", "maze", "--server_url", `${model.url}/v1`], {
      env: {
        ...process.env,
        LLMQTT_MQTT_URL: broker.url,
        LLMQTT_LOG_LEVEL: "warn",
        LLMQTT_HTTP_PORT: "0",
        LLMQTT_SESSION_STORE: "memory",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      assert.equal(JSON.parse((await game.next("maze/status")).text).status, "online");
      await game.publish("maze/state", { sessionId: "proc", player_pos: [1, 2] });
      const hint = JSON.parse((await game.next("maze/hint/proc")).text) as { hint: string };
      assert.match(hint.hint, /^\{"player_pos": \[1, 2\]/);

      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      assert.equal(await exited, 0, output);
      assert.equal(JSON.parse((await game.next("maze/status")).text).status, "offline");
    } finally {
      child.kill("SIGKILL");
      await game.close();
      await model.stop();
      await broker.stop();
    }
  });

  test("--help explains the command and an invalid setting exits 2 naming it", async () => {
    const help = await runNode([CLI, "serve", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--server-url <url>/);
    assert.match(help.stdout, /LLMQTT_SERVER_URL/);
    const bad = await runNode([CLI, "serve", "--top-p", "3"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /sampling\.topP/);
  });
});
