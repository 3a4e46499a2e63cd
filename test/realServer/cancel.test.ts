import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { LlamaServer, llamaServerSkip } from "../support/llamaServer.js";
import { startRealRig, type RealRig } from "../support/realRig.js";
import { eventually } from "../support/wait.js";

const skip = llamaServerSkip();

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
  let server: LlamaServer;
  let broker: TestBroker;
  let rig: RealRig;

  /** The one slot's state: whether it generates, and the tokens its current or last task decoded. */
  const slot = async () => {
    const [only] = await server.getJson<Slot[]>("/slots");
    return { busy: only?.is_processing === true, decoded: only?.next_token?.[0]?.n_decoded ?? 0 };
  };

  before(async () => {
    // One slot: a generation left running would hold every later request up.
    server = await LlamaServer.start({ ctx: 4096, parallel: 1 });
    broker = await startAedes();
    rig = await startRealRig(broker, [server.url]);
    await eventually(() => rig.gateway.scheduler.concurrency === 1, 10_000);
  });
  after(async () => {
    await rig?.stop();
    await broker?.stop();
    await server?.stop();
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
    await rig.game.publish("maze/state", state(1, LONG));
    await generating();
    await rig.game.publish("maze/state", state(2, 8));
    await rig.game.next("maze/hint/real", 30_000);
    assert.deepEqual(
      rig.game.messages.filter((m) => m.topic.startsWith("maze/hint/")),
      [],
    );
    assert.match(server.log, /cancel task/);
    const session = await rig.gateway.sessions.open({ project: "maze", sessionId: "real" });
    // The newer state's reply may be an error (8 tokens rarely finish the maze's JSON hint), but
    // nothing of the older state is stored.
    assert.ok(session.history.every((m) => !m.content.includes('"player_pos": [1, 1]')));
  });

  test("P/cancel stops the generation within a few tokens, and the next turn is answered", async () => {
    await rig.game.publish("general/user_input", {
      sessionId: "pc",
      requestId: "long",
      message: "Once upon a time",
      maxTokens: LONG,
      temperature: 0,
    });
    await generating();
    const atCancel = (await slot()).decoded;
    await rig.game.publish("general/cancel", { sessionId: "pc", requestId: "long" });
    assert.equal(
      (await rig.game.next("general/assistant_response/pc", 30_000)).text,
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
    await rig.game.publish("general/user_input", { sessionId: "pc", message: "Hi", maxTokens: 8 });
    assert.doesNotMatch((await rig.game.next("general/assistant_response/pc", 30_000)).text, /^Error/);
  });
});
