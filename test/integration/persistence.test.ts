import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "../../src/gateway.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { startRig } from "../support/harness.js";
import { captureLogs } from "../support/logCapture.js";
import { CLI } from "../support/processes.js";
import { redisAvailable, startRedis } from "../support/redis.js";
import { testSettings } from "../support/settings.js";
import { eventually } from "../support/wait.js";

type Message = { role: string; content: string };
const contents = (model: FakeModelServer) =>
  (model.requests.at(-1)?.body.messages as Message[]).map((message) => message.content);

/** One turn of `sessionId` in `project`, as a game plays it; resolves with the reply text. */
async function turn(game: GameClient, project: string, sessionId: string, message: string): Promise<string> {
  await game.publish(`${project}/user_input`, { sessionId, message });
  return (await game.next(`${project}/assistant_response/${sessionId}`)).text;
}

interface Served {
  child: ChildProcess;
  output(): string;
}

/** `llmqtt serve` as a process (no LLMQTT_* variables from outside), once it says it is ready. */
async function serve(args: string[]): Promise<Served> {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith("LLMQTT_")) delete env[name];
  const child = spawn(process.execPath, [CLI, "serve", "--log-format", "json", ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await eventually(
    () => output.includes('"msg":"llmqtt ready"') || child.exitCode !== null,
    15_000,
    () => output,
  );
  assert.equal(child.exitCode, null, output);
  return { child, output: () => output };
}

function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

describe("sessions in SQLite survive a gateway killed with SIGKILL", () => {
  let dir: string;
  let broker: TestBroker;
  let model: FakeModelServer;
  let game: GameClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llmqtt-persistence-"));
    broker = await startAedes();
    model = await FakeModelServer.start();
    game = await GameClient.connect(broker.url, ["+/assistant_response/#"]);
  });
  after(async () => {
    await game.close();
    await model.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("history and a project template are there after the restart", async () => {
    const args = [
      "--session-store",
      "sqlite",
      "--sqlite-path",
      join(dir, "s.db"),
      "--mqtt-url",
      broker.url,
      "--server-url",
      model.url,
      "--http",
      "false",
      "--mqtt-client-id",
      `llmqtt-persistence-${randomBytes(4).toString("hex")}`,
      "--projects",
      "general",
      "racing",
    ];
    const first = await serve(args);
    try {
      assert.match(first.output(), /"sessionStore":"sqlite","path":"[^"]*s\.db"/);
      await game.publish("racing/template", { template: "You remember everything." });
      await eventually(() => first.output().includes("project system prompt replaced"), 5000, first.output);
      for (const n of [1, 2, 3])
        assert.equal(await turn(game, "general", "kept", `turn ${n}`), `reply to: turn ${n}`);
    } finally {
      await killHard(first.child);
    }

    const second = await serve(args);
    try {
      assert.equal(await turn(game, "general", "kept", "turn 4"), "reply to: turn 4");
      assert.deepEqual(contents(model).slice(1), [
        "turn 1",
        "reply to: turn 1",
        "turn 2",
        "reply to: turn 2",
        "turn 3",
        "reply to: turn 3",
        "turn 4",
      ]);
      await turn(game, "racing", "newcomer", "hello");
      assert.equal(contents(model)[0], "You remember everything.");
    } finally {
      await killHard(second.child);
    }
  });
});

const skipRedis = redisAvailable() || process.env.CI === "true" ? false : "redis-server is not installed";

describe("sessions in Redis", { skip: skipRedis }, () => {
  test("a gateway started later continues the sessions and template another one left", async () => {
    const redis = await startRedis();
    const broker = await startAedes();
    const settings = {
      projects: ["general"],
      sessions: { store: "redis" as const, redis: { url: redis.url } },
    };
    try {
      const first = await startRig(broker, settings);
      try {
        await first.game.publish("general/template", { template: "Shared prompt." });
        await eventually(
          async () => (await first.gateway.sessions.projectPrompt("general")) === "Shared prompt.",
        );
        for (const n of [1, 2]) await turn(first.game, "general", "roaming", `turn ${n}`);
      } finally {
        await first.stop();
      }
      const second = await startRig(broker, settings);
      try {
        await turn(second.game, "general", "roaming", "turn 3");
        assert.deepEqual(contents(second.model), [
          "Shared prompt.",
          "turn 1",
          "reply to: turn 1",
          "turn 2",
          "reply to: turn 2",
          "turn 3",
        ]);
      } finally {
        await second.stop();
      }
    } finally {
      await broker.stop();
      await redis.stop();
    }
  });

  test("with Redis gone a turn gets an error reply and the log says why", async () => {
    const redis = await startRedis();
    const broker = await startAedes();
    const model = await FakeModelServer.start();
    const logs = captureLogs("info");
    const gateway = new Gateway(
      testSettings({
        projects: ["general"],
        mqtt: { url: broker.url },
        server: { url: model.url, probeIntervalSec: 0.2 },
        http: { enabled: false },
        logging: { statsIntervalSec: 0 },
        sessions: { store: "redis", redis: { url: redis.url } },
      }),
      { logger: logs.logger },
    );
    await gateway.start();
    const game = await GameClient.connect(broker.url, ["general/assistant_response/#"]);
    try {
      assert.ok(logs.lines().some((line) => line.sessionStore === "redis" && line.url === redis.url));
      await redis.stop();
      assert.equal(
        await turn(game, "general", "stranded", "hello?"),
        "Error: The gateway cannot reach its session store right now. Please try again shortly.",
      );
      const failure = logs.lines().find((line) => line.msg === "session store unavailable");
      assert.match(
        String((failure?.err as { message?: string })?.message),
        /session store: Redis at redis:\/\//,
      );
    } finally {
      await game.close();
      await gateway.stop();
      await model.stop();
      await broker.stop();
    }
  });
});
