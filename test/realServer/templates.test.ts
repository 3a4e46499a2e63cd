import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { LlamaServer, llamaServerSkip } from "../support/llamaServer.js";
import { startRealRig } from "../support/realRig.js";
import { RecordingProxy } from "../support/recordingProxy.js";

const skip = llamaServerSkip();

describe("real llama-server: tool calls become maze actions", { skip }, () => {
  let broker: TestBroker;
  let server: LlamaServer;

  before(async () => {
    server = await LlamaServer.start({ model: "tools", ctx: 4096, parallel: 2 });
    broker = await startAedes();
  });
  after(async () => {
    await broker?.stop();
    await server?.stop();
  });

  test("the functionary model's required call is a maze action JSON", async () => {
    const rig = await startRealRig(broker, [server.url], {
      // A boolean argument is one the tiny model completes within its tokens (integers go on
      // digit after digit); at temperature 0 the call is the same on every run.
      projects: [
        { name: "maze", mazeTools: ["reveal_map"], toolChoice: "required", maxTokens: 80, temperature: 0 },
      ],
    });
    try {
      for (const sessionId of ["t1", "t2"]) {
        await rig.game.publish("maze/state", { sessionId, player_pos: [1, 1], exit_pos: [5, 5] });
        const raw = (await rig.game.next(`maze/hint/${sessionId}`, 30_000)).text;
        const action = JSON.parse(raw) as Record<string, unknown>;
        assert.equal(action["hint"], "", raw);
        assert.equal(typeof action["reveal_map"], "boolean", raw);
      }
    } finally {
      await rig.stop();
    }
  });
});

describe("real llama-server: thinking control", { skip }, () => {
  let broker: TestBroker;
  let server: LlamaServer;
  let proxy: RecordingProxy;

  before(async () => {
    server = await LlamaServer.start({ ctx: 4096, parallel: 1 });
    proxy = await RecordingProxy.start(server.url);
    broker = await startAedes();
  });
  after(async () => {
    await broker?.stop();
    await proxy?.stop();
    await server?.stop();
  });

  /** The prompt llama-server renders for the request llmqtt sent, generating nothing. */
  async function renderedPrompt(skipThinking: boolean): Promise<string> {
    proxy.clear();
    const rig = await startRealRig(broker, [proxy.url], { skipThinking });
    try {
      await rig.game.publish("general/user_input", { sessionId: "think", message: "hello" });
      await rig.game.next("general/assistant_response/think");
    } finally {
      await rig.stop();
    }
    const sent = proxy.chats[0]!.body;
    const rendered = await server.postJson<{ prompt: string }>("/apply-template", sent);
    assert.equal(rendered.status, 200);
    return rendered.body.prompt;
  }

  test("skipThinking (the default) renders an empty think block, so the model answers at once", async () => {
    const prompt = await renderedPrompt(true);
    assert.ok(prompt.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), JSON.stringify(prompt));
  });

  test("with thinking on, the template leaves the model to think", async () => {
    const prompt = await renderedPrompt(false);
    assert.ok(prompt.endsWith("<|im_start|>assistant\n"), JSON.stringify(prompt));
  });
});
