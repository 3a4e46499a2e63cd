import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { readBase64Image } from "../../src/protocol/base64Image.js";
import { TINY_IMAGES } from "../support/images.js";

describe("readBase64Image", () => {
  test("PNG, JPEG, GIF and WebP are recognised by their bytes and become data URLs", () => {
    for (const [type, base64] of Object.entries(TINY_IMAGES)) {
      assert.deepEqual(readBase64Image(base64), { kind: "image", dataUrl: `data:${type};base64,${base64}` });
    }
  });

  test("GIF87a is a GIF too", () => {
    const gif87 = Buffer.concat([Buffer.from("GIF87a"), Buffer.alloc(20)]).toString("base64");
    assert.deepEqual(readBase64Image(gif87), { kind: "image", dataUrl: `data:image/gif;base64,${gif87}` });
  });

  test("line breaks are dropped and missing padding restored", () => {
    const png = TINY_IMAGES["image/png"];
    const wrapped = `${png.slice(0, 40)}\r\n${png.slice(40, 80)}\n${png.slice(80)}\n`;
    assert.deepEqual(readBase64Image(wrapped), { kind: "image", dataUrl: `data:image/png;base64,${png}` });
    const unpadded = TINY_IMAGES["image/png"].replace(/=+$/, "");
    assert.deepEqual(readBase64Image(unpadded), { kind: "image", dataUrl: `data:image/png;base64,${png}` });
  });

  test("base64 of anything else is named as such", () => {
    const others = [
      Buffer.from("BM6\0\0\0\0\0\0\x006\0\0\0(\0", "latin1"), // BMP
      Buffer.from("%PDF-1.7 and more bytes"),
      Buffer.from("RIFF\x24\0\0\0WAVEfmt ", "latin1"), // RIFF, but audio
      Buffer.from("GIF88a is not a version"),
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x00, 1, 2, 3, 4]), // PNG's last byte wrong
      Buffer.from("just some text, long enough"),
    ];
    for (const bytes of others)
      assert.deepEqual(readBase64Image(bytes.toString("base64")), { kind: "unknown" });
  });

  test("text that cannot be base64, or is too short to hold an image, is not taken for it", () => {
    for (const text of [
      "",
      "nope",
      "/9j/4AAQ",
      "a.png",
      "data:image/png;base64,iVBORw0KGgo=",
      "iVBORw0KGgo*AAAANSUhEUg",
      "iVBORw0K=GgoAAAANSUhEUg",
      "x".repeat(17),
    ]) {
      assert.deepEqual(readBase64Image(text), { kind: "not-base64" }, text);
    }
  });
});
