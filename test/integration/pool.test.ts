import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { startRig } from "../support/harness.js";
import { TINY_IMAGES } from "../support/images.js";
import { eventually } from "../support/wait.js";

type Part = { type: string; text?: string; image_url?: { url: string } };

describe("a pool of model servers", () => {
  test("one failing server: every turn is still answered, the failing one is cooled down", async () => {
    const broker = await startAedes();
    const failing = await FakeModelServer.start({ slots: 2, handler: () => ({ status: 500 }) });
    const healthy = await FakeModelServer.start({ slots: 2 });
    const rig = await startRig(broker, { backends: [{ url: failing.url }, { url: healthy.url }] });
    try {
      for (let i = 0; i < 6; i++) {
        await rig.game.publish("general/user_input", { sessionId: `pool-${i}`, message: `m${i}` });
      }
      const replies = await rig.game.collect(
        (t) => t.startsWith("general/assistant_response/pool-"),
        6,
        15_000,
      );
      for (const reply of replies) assert.match(reply.text, /^reply to: m\d$/);
      assert.ok(failing.requests.length >= 1, "the failing server was tried");
      const statuses = rig.gateway.backend.status();
      assert.equal(
        statuses.find((s) => s.name.includes(String(new URL(failing.url).port)))?.coolingDown,
        true,
      );
      const metrics = await (await fetch(`${rig.gateway.httpUrl}/metrics`)).text();
      assert.match(metrics, /llmqtt_model_server_up\{server="[^"]+"\} 0/);
    } finally {
      await rig.stop();
      await failing.stop();
      await healthy.stop();
      await broker.stop();
    }
  });

  test("slot counts are respected per server and add up to the gateway's concurrency", async () => {
    const broker = await startAedes();
    const small = await FakeModelServer.start({ slots: 1, handler: () => ({ text: "s", delayMs: 60 }) });
    const large = await FakeModelServer.start({ slots: 3, handler: () => ({ text: "l", delayMs: 60 }) });
    const rig = await startRig(broker, { backends: [{ url: small.url }, { url: large.url }] });
    try {
      await eventually(() => rig.gateway.scheduler.concurrency === 4);
      for (let i = 0; i < 12; i++) {
        await rig.game.publish("general/user_input", { sessionId: `slot-${i}`, message: "x" });
      }
      await rig.game.collect((t) => t.startsWith("general/assistant_response/slot-"), 12, 15_000);
      assert.ok(small.maxInFlight <= 1, `small server saw ${small.maxInFlight}`);
      assert.ok(large.maxInFlight <= 3, `large server saw ${large.maxInFlight}`);
      assert.ok(small.requests.length > 0 && large.requests.length > 0, "both servers used");
    } finally {
      await rig.stop();
      await small.stop();
      await large.stop();
      await broker.stop();
    }
  });
});

describe("images (PROTOCOL C4)", () => {
  test("images reach the server as image_url parts; history keeps the text only", async () => {
    const broker = await startAedes();
    const rig = await startRig(broker);
    const png = "data:image/png;base64,iVBORw0KGgo=";
    try {
      await rig.game.publish("general/user_input", {
        sessionId: "img",
        message: "what is this?",
        images: [png],
      });
      await rig.game.next("general/assistant_response/img");
      const content = rig.model.requests[0]?.body.messages.at(-1).content as Part[];
      assert.deepEqual(content, [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: png } },
      ]);
      await rig.game.publish("general/user_input", { sessionId: "img", images: [png] });
      await rig.game.next("general/assistant_response/img");
      const second = rig.model.requests[1]?.body.messages;
      assert.equal(second[1].content, "what is this?", "the earlier turn is text in history");
      assert.deepEqual(second.at(-1).content, [{ type: "image_url", image_url: { url: png } }]);

      rig.model.resetStats();
      rig.model.handler = () => ({
        status: 500,
        errorBody: {
          error: { code: 500, message: "image input is not supported by this server", type: "server_error" },
        },
      });
      await rig.game.publish("general/user_input", { sessionId: "img", message: "again", images: [png] });
      const refusal = await rig.game.next("general/assistant_response/img");
      assert.match(refusal.text, /^Error: .*cannot take images/);
      assert.equal(rig.model.requests.length, 1, "not retried");
    } finally {
      await rig.stop();
      await broker.stop();
    }
  });

  test("bare base64 images reach the server as data URLs of the type their bytes show", async () => {
    const broker = await startAedes();
    const rig = await startRig(broker);
    try {
      const jpeg = TINY_IMAGES["image/jpeg"];
      await rig.game.publish("general/user_input", {
        sessionId: "raw",
        message: "and this?",
        images: [jpeg],
      });
      await rig.game.next("general/assistant_response/raw");
      const content = rig.model.requests[0]?.body.messages.at(-1).content as Part[];
      assert.deepEqual(content[1], {
        type: "image_url",
        image_url: { url: `data:image/jpeg;base64,${jpeg}` },
      });

      const bmp = Buffer.from("BM6\0\0\0\0\0\0\x006\0\0\0(\0", "latin1").toString("base64");
      await rig.game.publish("general/user_input", { sessionId: "raw", message: "bmp", images: [bmp] });
      assert.equal(
        (await rig.game.next("general/assistant_response/raw")).text,
        "Error: Invalid request: images[0] is base64 but not a PNG, JPEG, GIF or WebP image",
      );
      assert.equal(rig.model.requests.length, 1, "the refused turn never reached the model");
    } finally {
      await rig.stop();
      await broker.stop();
    }
  });
});
