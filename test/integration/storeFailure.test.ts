import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { freePort, startAedes, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { spawnGateway, uniqueClientId, type GatewayProcess } from "../support/gatewayProcess.js";
import { redisAvailable, startRedis, type TestRedis } from "../support/redis.js";
import { eventually } from "../support/wait.js";

const REPLIES = "general/assistant_response/#";
const BRIDGE = "llmqtt/bridge/response/#";
const skipRedis = redisAvailable() || process.env.CI === "true" ? false : "redis-server is not installed";

/** llmqtt as a process with the bridge and the HTTP endpoint, and a game and operator client. */
interface Rig {
  gateway: GatewayProcess;
  game: GameClient;
  httpUrl: string;
}

async function startRig(broker: TestBroker, model: FakeModelServer, storeArgs: string[]): Promise<Rig> {
  const httpPort = await freePort();
  const game = await GameClient.connect(broker.url, [REPLIES, BRIDGE, "general/status"]);
  const gateway = spawnGateway([
    ...["--mqtt-url", broker.url, "--mqtt-client-id", uniqueClientId("store")],
    ...["--server-url", model.url, "--bridge", "true"],
    ...["--http", "true", "--http-host", "127.0.0.1", "--http-port", String(httpPort)],
    ...storeArgs,
  ]);
  await gateway.waitForLog((line) => line.msg === "llmqtt ready");
  return { gateway, game, httpUrl: `http://127.0.0.1:${httpPort}` };
}

async function ask(game: GameClient, sessionId: string, message = "hello"): Promise<string> {
  await game.publish("general/user_input", { sessionId, message });
  return (await game.next(`general/assistant_response/${sessionId}`, 20_000)).text;
}

async function command(game: GameClient, name: string, args: object = {}): Promise<Record<string, unknown>> {
  await game.publish(`llmqtt/bridge/request/${name}`, args);
  const response = await game.next(`llmqtt/bridge/response/${name}`, 20_000);
  return JSON.parse(response.text) as Record<string, unknown>;
}

/** How many log lines carry this message. */
function logged(gateway: GatewayProcess, msg: string): number {
  return gateway.logs().filter((line) => line.msg === msg).length;
}

/**
 * Every project-wide and per-session change with the store away, sent at once (each waits for the
 * store to fail): each one is logged as failed.
 */
async function assertChangesLogged({ game, gateway }: Rig): Promise<void> {
  const expected: Record<string, number> = {
    "project system prompt not replaced": 1,
    "clear history failed": 1,
    "delete session failed": 1,
    "session change failed": 2,
  };
  const before = Object.fromEntries(Object.keys(expected).map((msg) => [msg, logged(gateway, msg)]));
  await game.publish("general/template", { template: "Be brief." });
  await game.publish("general/clear_history", {});
  await game.publish("general/delete_session", { target: "all" });
  await game.publish("general/template/s1", { template: "Be brief." });
  await game.publish("general/clear_history/s1", {});
  await gateway.waitForLog(
    () => Object.entries(expected).every(([msg, count]) => logged(gateway, msg) >= before[msg]! + count),
    30_000,
  );
}

/** Each bridge command that reads or changes sessions answers with the store's error. */
async function assertCommandsFail({ game }: Rig, storeError: RegExp): Promise<void> {
  for (const [name, args] of Object.entries(STORE_COMMANDS))
    await game.publish(`llmqtt/bridge/request/${name}`, args);
  for (const name of Object.keys(STORE_COMMANDS)) {
    const response = JSON.parse((await game.next(`llmqtt/bridge/response/${name}`, 30_000)).text) as {
      status: string;
      error: string;
    };
    assert.equal(response.status, "error", name);
    assert.match(response.error, storeError, name);
  }
}

describe("the session store failing, llmqtt running as a process", () => {
  let broker: TestBroker;
  let model: FakeModelServer;

  before(async () => {
    broker = await startAedes();
    model = await FakeModelServer.start();
  });
  after(async () => {
    await model.stop();
    await broker.stop();
  });

  test(
    "Redis stopped: error replies and log lines, the process stays up, and serves again once Redis is back",
    { skip: skipRedis },
    async () => {
      let redis: TestRedis | undefined = await startRedis();
      const rig = await startRig(broker, model, ["--session-store", "redis", "--redis-url", redis.url]);
      try {
        assert.equal(await ask(rig.game, "before"), "reply to: hello");
        await redis.stop();

        assert.match(await ask(rig.game, "during"), /^Error: .*session store/);
        await assertChangesLogged(rig);
        await assertCommandsFail(rig, /session store: Redis/);
        const status = await fetch(`${rig.httpUrl}/api/status`);
        assert.equal(status.status, 503);
        assert.match(((await status.json()) as { error: string }).error, /session store: Redis/);
        assert.ok(rig.gateway.alive(), rig.gateway.output());

        const restored = logged(rig.gateway, "Redis connection restored");
        await redis.restart();
        await rig.gateway.waitForLog(
          () => logged(rig.gateway, "Redis connection restored") > restored,
          20_000,
        );
        assert.equal(await ask(rig.game, "after"), "reply to: hello");
        assert.equal((await command(rig.game, "sessions")).status, "ok");
        assert.equal((await fetch(`${rig.httpUrl}/api/status`)).status, 200);

        rig.gateway.signal("SIGTERM");
        assert.equal(await rig.gateway.exited, 0, rig.gateway.output());
      } finally {
        await rig.gateway.kill();
        await rig.game.close();
        await redis?.stop();
        redis = undefined;
      }
    },
  );

  test("SQLite locked by another process: error replies and log lines, the process stays up, and serves again once it is released", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "llmqtt-locked-")), "sessions.db");
    const rig = await startRig(broker, model, ["--session-store", "sqlite", "--sqlite-path", path]);
    const other = new Database(path);
    try {
      assert.equal(await ask(rig.game, "before"), "reply to: hello");
      other.exec("BEGIN EXCLUSIVE");

      assert.match(await ask(rig.game, "during"), /^Error: .*session store/);
      await assertChangesLogged(rig);
      const response = await command(rig.game, "prompt_set", {
        project: "general",
        systemPrompt: "Be brief.",
      });
      assert.equal(response.status, "error");
      assert.match(String(response.error), /session store: SQLite .*locked/);
      assert.ok(rig.gateway.alive(), rig.gateway.output());

      other.exec("COMMIT");
      // Each wait for the lock blocked llmqtt (the driver is synchronous), its model health checks
      // too: the model server may count as unreachable until the next check.
      await eventually(async () => (await ask(rig.game, "after")) === "reply to: hello", 20_000);
      rig.gateway.signal("SIGTERM");
      assert.equal(await rig.gateway.exited, 0, rig.gateway.output());
    } finally {
      other.close();
      await rig.gateway.kill();
      await rig.game.close();
    }
  });
});

/** The bridge commands that read or change sessions, with valid arguments. */
const STORE_COMMANDS: Record<string, object> = {
  projects: {},
  sessions: {},
  session_get: { project: "general", sessionId: "before" },
  session_clear: { project: "general" },
  session_delete: { project: "general", sessionId: "before" },
  prompt_get: { project: "general" },
  prompt_set: { project: "general", systemPrompt: "Be brief." },
  // These two report the gateway's snapshot, session counts included.
  servers: {},
  health: {},
};
