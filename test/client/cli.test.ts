import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, startAedes, type TestBroker } from "../support/brokers.js";
import { startRig, type Rig } from "../support/harness.js";

// Tests run from build/test/client/; the CLI is the built dist/cli.js at the repo root.
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = fileURLToPath(new URL("../../../dist/cli.js", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a user runs it; killed after 30 s so a hang fails the test instead of the suite. */
function llmqtt(args: string[], stdin = ""): Promise<Run> {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("LLMQTT_")) delete env[key];
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(stdin);
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
}

type Message = { role: string; content: string };

describe("llmqtt ask and chat as processes", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker);
  });
  afterEach(() => {
    rig.model.handler = () => ({});
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  test("ask prints the reply and exits 0", async () => {
    const run = await llmqtt(["ask", "--mqtt-url", broker.url, "--project", "general", "hello"]);
    assert.equal(run.stdout, "reply to: hello\n");
    assert.equal(run.code, 0, run.stderr);
  });

  test("ask --json, --system and the broker from host and port", async () => {
    const run = await llmqtt([
      "ask",
      "--mqtt-broker",
      "127.0.0.1",
      "--mqtt-port",
      String(broker.port),
      "--system",
      "Answer in French.",
      "--json",
      "what",
      "is",
      "MQTT?",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.equal(out.reply, "reply to: what is MQTT?");
    assert.match(
      String(out.topic),
      /^general\/assistant_response\/default-[0-9a-f]{8}\/llmqtt-chat-[0-9a-f]{8}\/[0-9a-f]{4}-1$/,
    );
    assert.equal(typeof out.latencyMs, "number");
    assert.equal(out.finishReason, "stop");
    assert.deepEqual(Object.keys(out.usage as object), ["promptTokens", "completionTokens"]);
    const messages = rig.model.requests.at(-1)?.body.messages as Message[];
    assert.deepEqual(messages[0], { role: "system", content: "Answer in French." });
  });

  test("ask reads the broker URL from LLMQTT_MQTT_URL", async () => {
    const child = spawn(process.execPath, [CLI, "ask", "from env"], {
      cwd: ROOT,
      env: { ...process.env, LLMQTT_MQTT_URL: broker.url },
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise((resolve) => child.on("close", resolve));
    assert.equal(code, 0);
    assert.equal(stdout, "reply to: from env\n");
  });

  test("ask --session continues a conversation", async () => {
    const first = await llmqtt(["ask", "--mqtt-url", broker.url, "--session", "kept-1", "one"]);
    assert.equal(first.code, 0, first.stderr);
    const second = await llmqtt(["ask", "--mqtt-url", broker.url, "--session", "kept-1", "two"]);
    assert.equal(second.stdout, "reply to: two\n");
    const messages = rig.model.requests.at(-1)?.body.messages as Message[];
    assert.deepEqual(
      messages.slice(1).map((m) => m.content),
      ["one", "reply to: one", "two"],
    );
  });

  test("an error reply exits 1 and is shown on stderr", async () => {
    rig.model.handler = () => ({ status: 400 });
    const run = await llmqtt(["ask", "--mqtt-url", broker.url, "hello"]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /Error: /);
  });

  test("chat with piped lines: replies in order, /clear reaches the gateway, /quit exits 0", async () => {
    const script = "hello\n/clear\nagain\n/quit\nnever sent\n";
    const run = await llmqtt(["chat", "--mqtt-url", broker.url, "--session", "piped-1"], script);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "reply to: hello\nreply to: again\n");
    assert.match(run.stderr, /session piped-1/);
    assert.match(run.stderr, /history of session piped-1 cleared/);
    // The history was cleared between the two turns: the second saw only its own message.
    const messages = rig.model.requests.at(-1)?.body.messages as Message[];
    assert.deepEqual(messages.map((m) => m.content).slice(1), ["again"]);
  });

  test("chat: /system, /help, an error reply and the end of input", async () => {
    const script = "/help\n/system You are a pirate.\nahoy\n/nonsense\n";
    const run = await llmqtt(["chat", "--mqtt-url", broker.url], script);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "reply to: ahoy\n");
    assert.match(run.stderr, /session chat-[0-9a-f]{6}/);
    assert.match(run.stderr, /\/system <prompt>/);
    assert.match(run.stderr, /unknown command \/nonsense/);
    const messages = rig.model.requests.at(-1)?.body.messages as Message[];
    assert.deepEqual(messages[0], { role: "system", content: "You are a pirate." });

    rig.model.handler = () => ({ status: 400 });
    const failing = await llmqtt(["chat", "--mqtt-url", broker.url], "hello\n");
    assert.equal(failing.code, 0);
    assert.equal(failing.stdout, "");
    assert.match(failing.stderr, /Error: /);
  });
});

describe("llmqtt ask without a gateway", () => {
  let broker: TestBroker;
  before(async () => (broker = await startAedes()));
  after(() => broker.stop());

  test("no reply in time exits 1 with a hint", async () => {
    const run = await llmqtt(["ask", "--mqtt-url", broker.url, "--timeout", "1", "hello"]);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /no reply within 1s on general\/assistant_response\/\S+ — is an llmqtt gateway running and serving project general\?/,
    );
  });

  test("an unreachable broker exits 2", async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const run = await llmqtt(["ask", "--mqtt-url", url, "hello"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`cannot connect to MQTT broker at ${url}: `));
    const chat = await llmqtt(["chat", "--mqtt-url", url], "hello\n");
    assert.equal(chat.code, 2);
  });
});
