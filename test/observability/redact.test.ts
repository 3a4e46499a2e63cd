import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { redactUrl } from "../../src/observability/redact.js";

describe("redactUrl", () => {
  test("hides the password of a URL and keeps the rest", () => {
    assert.equal(redactUrl("mqtts://gw:s3cret@broker.example:8883"), "mqtts://gw:***@broker.example:8883");
    assert.equal(redactUrl("redis://:pw@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
  });

  test("leaves URLs without a password alone", () => {
    assert.equal(redactUrl("mqtt://127.0.0.1:1883"), "mqtt://127.0.0.1:1883");
    assert.equal(redactUrl("mqtt://user@host:1883"), "mqtt://user@host:1883");
  });

  test("an unparsable string keeps nothing before its last @", () => {
    assert.equal(redactUrl("not a url with secret@host"), "***@host");
    assert.equal(redactUrl("plain words"), "plain words");
  });
});
