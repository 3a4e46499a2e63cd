import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { MAX_IMAGES } from "../../src/protocol/turnOptions.js";
import { TINY_IMAGES } from "../support/images.js";
import { DEFAULT_ID, makeContext, parse, rejectionOf, turnOf } from "./helpers.js";

const CHAT = "general/user_input";
const PNG = "data:image/png;base64,iVBORw0KGgo=";
const NOT_AN_IMAGE =
  "must be a data:image/...;base64,... URL, an http(s):// URL or a base64 PNG, JPEG, GIF or WebP image";

function invalidTurn(payload: string | object, message: string, ctx = makeContext()) {
  const r = rejectionOf(parse(CHAT, payload, ctx));
  assert.equal(r.error.code, "invalid_request", JSON.stringify(payload).slice(0, 100));
  assert.equal(r.error.message, `Invalid request: ${message}`, JSON.stringify(payload).slice(0, 100));
  return r;
}

describe("parseInbound: stream (C3)", () => {
  test("booleans and true/false strings are read", () => {
    const cases: [unknown, boolean][] = [
      [true, true],
      [false, false],
      ["true", true],
      ["false", false],
      [" TRUE ", true],
      ["False", false],
    ];
    for (const [stream, expected] of cases) {
      assert.equal(turnOf(parse(CHAT, { message: "hi", stream })).stream, expected, String(stream));
    }
  });

  test("absent or null: no stream field", () => {
    assert.equal("stream" in turnOf(parse(CHAT, { message: "hi" })), false);
    assert.equal("stream" in turnOf(parse(CHAT, { message: "hi", stream: null })), false);
  });

  test("other values are refused on the turn's reply topic", () => {
    for (const stream of [1, 0, "maybe", "", [], {}]) {
      const r = invalidTurn({ sessionId: "s1", message: "hi", stream }, "stream must be true or false");
      assert.deepEqual(r.reply, { topic: "general/assistant_response/s1", format: "text" });
    }
  });

  test("a reply topic too long to take /stream is refused only when streaming", () => {
    const ctx = () => makeContext({ limits: { maxPayloadBytes: 200_000, maxMessageChars: 50 } });
    const base = "general/assistant_response/s1/";
    const replyTopic = base + "x".repeat(65_535 - base.length);
    const payload = { sessionId: "s1", message: "hi", replyTopic };
    assert.equal(turnOf(parse(CHAT, payload, ctx())).reply.topic, replyTopic);
    assert.equal(turnOf(parse(CHAT, { ...payload, stream: false }, ctx())).reply.topic, replyTopic);
    const r = invalidTurn(
      { ...payload, stream: true },
      "the reply topic is too long to add /stream to it",
      ctx(),
    );
    assert.equal(r.reply?.topic, replyTopic);
  });
});

describe("parseInbound: responseFormat (C1)", () => {
  test("json (any case) selects the envelope on chat topics", () => {
    for (const responseFormat of ["json", "JSON", " Json "]) {
      const turn = turnOf(parse(CHAT, { sessionId: "s1", message: "hi", responseFormat }));
      assert.equal(turn.responseFormat, "json");
      assert.deepEqual(turn.reply, { topic: "general/assistant_response/s1", format: "json" });
    }
  });

  test("text keeps the raw reply", () => {
    for (const responseFormat of ["text", "TEXT"]) {
      const turn = turnOf(parse(CHAT, { sessionId: "s1", message: "hi", responseFormat }));
      assert.equal(turn.responseFormat, "text");
      assert.equal(turn.reply.format, "text");
    }
  });

  test("json wins over the maze format; text keeps it", () => {
    const json = turnOf(parse("maze/state", { sessionId: "m1", responseFormat: "json" }));
    assert.deepEqual(json.reply, { topic: "maze/hint/m1", format: "json" });
    const text = turnOf(parse("maze/state", { sessionId: "m1", responseFormat: "text" }));
    assert.deepEqual(text.reply, { topic: "maze/hint/m1", format: "maze" });
    assert.equal(text.responseFormat, "text");
  });

  test("absent or null: no field, part A format", () => {
    for (const responseFormat of [undefined, null]) {
      const turn = turnOf(parse(CHAT, { message: "hi", responseFormat }));
      assert.equal("responseFormat" in turn, false);
      assert.equal(turn.reply.format, "text");
    }
  });

  test("other values are refused, in the part A format", () => {
    for (const responseFormat of ["xml", "", "envelope", 1, true, ["json"], { type: "json" }]) {
      const r = invalidTurn(
        { sessionId: "s1", message: "hi", responseFormat },
        'responseFormat must be "text" or "json"',
      );
      assert.deepEqual(r.reply, { topic: "general/assistant_response/s1", format: "text" });
    }
  });

  test("a refusal of a json turn is written as the envelope", () => {
    const r = invalidTurn(
      { sessionId: "s1", responseFormat: "json", requestId: "r1" },
      "message must be a non-empty string",
    );
    assert.deepEqual(r.reply, { topic: "general/assistant_response/s1", format: "json" });
    assert.equal(r.requestId, "r1");
  });
});

describe("parseInbound: per-project json default (jsonProjects)", () => {
  const ctx = () => makeContext({ jsonProjects: new Set(["general", "maze"]) });

  test("JSON turns of a configured project get the envelope; the field stays absent", () => {
    const turn = turnOf(parse(CHAT, { sessionId: "s1", message: "hi" }, ctx()));
    assert.deepEqual(turn.reply, { topic: "general/assistant_response/s1", format: "json" });
    assert.equal("responseFormat" in turn, false);
  });

  test("plain-text turns too", () => {
    const turn = turnOf(parse(CHAT, "hello", ctx()));
    assert.match(turn.sessionId, DEFAULT_ID);
    assert.equal(turn.reply.format, "json");
  });

  test("a turn's responseFormat: text opts out", () => {
    const turn = turnOf(parse(CHAT, { message: "hi", responseFormat: "text" }, ctx()));
    assert.equal(turn.reply.format, "text");
  });

  test("maze snapshots and maze chat of a configured maze project", () => {
    assert.equal(turnOf(parse("maze/state", { sessionId: "m1" }, ctx())).reply.format, "json");
    const optOut = turnOf(parse("maze/state", { sessionId: "m1", responseFormat: "text" }, ctx()));
    assert.equal(optOut.reply.format, "maze");
    assert.equal(turnOf(parse("maze/user_input", { message: "hi" }, ctx())).reply.format, "json");
  });

  test("other projects keep part A", () => {
    assert.equal(turnOf(parse("prompt_portal/user_input", { message: "hi" }, ctx())).reply.format, "text");
  });

  test("refusals of a configured project use the envelope, whatever the payload", () => {
    const big = makeContext({
      jsonProjects: new Set(["general"]),
      limits: { maxPayloadBytes: 10, maxMessageChars: 50 },
    });
    assert.equal(rejectionOf(parse(CHAT, "[1]", ctx())).reply?.format, "json");
    assert.equal(rejectionOf(parse(CHAT, "x".repeat(100), big)).reply?.format, "json");
    // An unusable responseFormat falls back to the project's format.
    const r = rejectionOf(parse(CHAT, { message: "hi", responseFormat: "xml" }, ctx()));
    assert.equal(r.reply?.format, "json");
  });
});

describe("parseInbound: images (C4)", () => {
  test("data URLs and http(s) URLs are kept exactly", () => {
    const images = [
      PNG,
      "data:image/jpeg;name=cat.jpg;base64,/9j/4AAQSkZJRg",
      "data:image/svg+xml;base64,PHN2Zz4=",
      "DATA:IMAGE/WEBP;BASE64,UklGRg==",
      "https://example.com/a.png?size=large#x",
      "http://192.168.1.5:8080/cam.jpg",
    ];
    assert.deepEqual(turnOf(parse(CHAT, { message: "what is this?", images })).images, images);
  });

  test("a full turn with every part C field", () => {
    const turn = turnOf(
      parse(CHAT, {
        sessionId: "s1",
        message: "look",
        images: [PNG],
        stream: true,
        responseFormat: "json",
        requestId: "r1",
      }),
    );
    assert.deepEqual(turn, {
      project: "general",
      sessionId: "s1",
      kind: "chat",
      content: "look",
      sampling: {},
      reply: { topic: "general/assistant_response/s1", format: "json" },
      requestId: "r1",
      stream: true,
      responseFormat: "json",
      images: [PNG],
    });
  });

  test(`up to ${MAX_IMAGES} images`, () => {
    assert.equal(MAX_IMAGES, 8);
    const images = Array.from({ length: 8 }, () => PNG);
    assert.equal(turnOf(parse(CHAT, { message: "hi", images })).images?.length, 8);
    invalidTurn({ message: "hi", images: [...images, PNG] }, "images has 9 entries, the limit is 8");
  });

  test("absent, null or empty: no images field", () => {
    for (const images of [undefined, null, []]) {
      assert.equal("images" in turnOf(parse(CHAT, { message: "hi", images })), false);
    }
  });

  test("not a list", () => {
    for (const images of [PNG, 1, { 0: PNG }, true]) {
      invalidTurn({ message: "hi", images }, "images must be a list of image URL strings");
    }
  });

  test("entries that are not strings are named by index", () => {
    invalidTurn({ message: "hi", images: [1] }, "images[0] must be a string");
    invalidTurn({ message: "hi", images: [PNG, null] }, "images[1] must be a string");
    invalidTurn({ message: "hi", images: [PNG, PNG, [PNG]] }, "images[2] must be a string");
  });

  test("strings that are not image URLs are named by index", () => {
    const bad = [
      "data:,",
      "data:text/plain;base64,AAAA",
      "data:image/png,rawbytes",
      "data:image/png;base64,",
      "data:image/png;base64,AA AA",
      "data:image/png;base64,AA==\n",
      "data:image/;base64,AAAA",
      "data:image/png;base64,A*==",
      "ftp://example.com/a.png",
      "https://",
      "https:///a.png",
      "https://?q=1",
      "https://\\\\host/a.png",
      "https://exa mple.com/a.png",
      " https://example.com/a.png",
      "javascript:alert(1)",
      "/home/user/a.png",
      "a.png",
      "",
    ];
    for (const image of bad) {
      invalidTurn({ message: "hi", images: [PNG, image] }, `images[1] ${NOT_AN_IMAGE}`);
    }
  });

  test("bare base64 images are typed from their bytes and passed on as data URLs", () => {
    const images = Object.values(TINY_IMAGES);
    const turn = turnOf(parse(CHAT, { message: "what is this?", images: [PNG, ...images] }));
    assert.deepEqual(turn.images, [
      PNG,
      ...Object.entries(TINY_IMAGES).map(([type, base64]) => `data:${type};base64,${base64}`),
    ]);
  });

  test("bare base64 of anything but an image is refused, saying so", () => {
    const pdf = Buffer.from("%PDF-1.7 and more bytes").toString("base64");
    const r = invalidTurn(
      { sessionId: "s1", message: "hi", images: [PNG, pdf] },
      "images[1] is base64 but not a PNG, JPEG, GIF or WebP image",
    );
    assert.equal(r.reply?.topic, "general/assistant_response/s1");
  });

  test("image-only turns: a missing or blank message with an image gives content ''", () => {
    for (const message of [undefined, null, "", "  \n "]) {
      const turn = turnOf(parse(CHAT, { sessionId: "s1", message, images: [PNG] }));
      assert.equal(turn.content, "", String(message));
      assert.deepEqual(turn.images, [PNG]);
    }
  });

  test("without a usable image a message is still required", () => {
    invalidTurn({ images: [] }, "message must be a non-empty string");
    invalidTurn({ message: " ", images: null }, "message must be a non-empty string");
    // The images are why the turn is empty, so they are what is reported.
    invalidTurn({ images: ["nope"] }, `images[0] ${NOT_AN_IMAGE}`);
    invalidTurn({ message: "", images: "nope" }, "images must be a list of image URL strings");
    // A message that is there but wrong stays the problem.
    invalidTurn({ message: 5, images: [PNG] }, "message must be a non-empty string");
    invalidTurn({ message: "x".repeat(51), images: [PNG] }, "message is longer than 50 characters");
  });

  test("maze snapshots may carry images", () => {
    const turn = turnOf(parse("maze/state", { sessionId: "m1", images: [PNG] }));
    assert.deepEqual(turn.images, [PNG]);
    assert.equal(turn.kind, "state");
  });
});
