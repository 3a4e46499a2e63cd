import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observability/logger.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { GameClient } from "../support/gameClient.js";
import { testSettings } from "../support/settings.js";
import { eventually } from "../support/wait.js";

// A minimal llama-server starter for this file alone; the real-server suite's shared one
// (test/support/llamaServer.ts on its way to main) replaces it.
const LLAMA_SERVER = fileURLToPath(new URL("../../../../shared/bin/llama-server", import.meta.url));
const CHAT_MODEL = fileURLToPath(
  new URL("../../../../shared/models/stories260K-qwen3-chat.gguf", import.meta.url),
);
const skip =
  process.env.CI !== "true" && !(existsSync(LLAMA_SERVER) && existsSync(CHAT_MODEL))
    ? "llama-server or its test model is missing"
    : false;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

interface Slot {
  is_processing: boolean;
  next_token?: { n_decoded: number }[];
}

/** max_tokens of the turns to be cancelled. */
const LONG = 1900;
/**
 * Tokens a generation may still make between the cancel's publish and its stop: the MQTT round
 * and the abort take milliseconds, a token of the tiny model about two.
 */
const STOP_SLACK = 100;

describe("real llama-server: cancellation frees the model's slot", { skip }, () => {
  let server: ChildProcess;
  let serverUrl: string;
  let log = "";
  let broker: TestBroker;
  let gateway: Gateway;
  let game: GameClient;

  const getJson = async <T>(path: string): Promise<T> => (await fetch(`${serverUrl}${path}`)).json() as T;
  /** The one slot's state: whether it generates, and the tokens its current or last task decoded. */
  const slot = async () => {
    const [only] = await getJson<Slot[]>("/slots");
    return { busy: only?.is_processing === true, decoded: only?.next_token?.[0]?.n_decoded ?? 0 };
  };

  before(async () => {
    const port = await freePort();
    serverUrl = `http://127.0.0.1:${port}`;
    // One slot: a generation left running would hold every later request up.
    const args = ["-m", CHAT_MODEL, "--host", "127.0.0.1", "--port", String(port)];
    server = spawn(LLAMA_SERVER, [
      ...args,
      "-c",
      "4096",
      "--parallel",
      "1",
      "--jinja",
      "-t",
      "1",
      "--metrics",
    ]);
    server.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    server.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    await eventually(
      () =>
        fetch(`${serverUrl}/health`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
    );
    broker = await startAedes();
    const settings = testSettings({
      projects: ["maze", "general"],
      mqtt: { url: broker.url, reconnectPeriodMs: 200 },
      server: { url: serverUrl, probeIntervalSec: 0.2, timeoutSec: 60 },
      logging: { level: process.env.LLMQTT_TEST_LOG ?? "silent", statsIntervalSec: 0 },
      http: { port: 0 },
    });
    gateway = new Gateway(settings, { logger: createLogger(settings.logging.level) });
    await gateway.start();
    await eventually(() => gateway.scheduler.concurrency === 1, 10_000);
    game = await GameClient.connect(broker.url, ["+/assistant_response/#", "maze/hint/#"]);
  });
  after(async () => {
    await game?.close();
    await gateway?.stop();
    await broker?.stop();
    server?.kill("SIGTERM");
  });

  /** Waits until the server is generating for the turn just sent. */
  const generating = () => eventually(async () => (await slot()).busy, 10_000);

  test("a newer maze state stops the older one's generation: the newer hint comes, the older gets none", async () => {
    const state = (x: number, maxTokens: number) => ({
      sessionId: "real",
      player_pos: { x, y: 1 },
      exit_pos: [9, 9],
      maxTokens,
    });
    await game.publish("maze/state", state(1, LONG));
    await generating();
    await game.publish("maze/state", state(2, 8));
    await game.next("maze/hint/real", 30_000);
    assert.deepEqual(
      game.messages.filter((m) => m.topic.startsWith("maze/hint/")),
      [],
    );
    assert.match(log, /cancel task/);
    const session = await gateway.sessions.open({ project: "maze", sessionId: "real" });
    assert.equal(session.history.length, 2, "only the newer state and its hint are stored");
  });

  test("P/cancel stops the generation within a few tokens, and the next turn is answered", async () => {
    await game.publish("general/user_input", {
      sessionId: "pc",
      requestId: "long",
      message: "Once upon a time",
      maxTokens: LONG,
      temperature: 0,
    });
    await generating();
    const atCancel = (await slot()).decoded;
    await game.publish("general/cancel", { sessionId: "pc", requestId: "long" });
    assert.equal(
      (await game.next("general/assistant_response/pc", 30_000)).text,
      "Error: The request was cancelled.",
    );
    await eventually(async () => !(await slot()).busy, 10_000);
    // A dropped stream stops at the next token. A model call that were never aborted would run
    // on to LONG tokens (or the story's end, hundreds of tokens on).
    const after = (await slot()).decoded;
    assert.ok(
      after - atCancel < STOP_SLACK,
      `generation went on for ${after - atCancel} tokens after the cancel`,
    );
    await game.publish("general/user_input", { sessionId: "pc", message: "Hi", maxTokens: 8 });
    assert.doesNotMatch((await game.next("general/assistant_response/pc", 30_000)).text, /^Error/);
  });
});
