import { describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  ERROR_TEXT,
  errorMessage,
  formatFailure,
  formatNotice,
  gatewayError,
} from "../../src/protocol/outbound.js";
import type { ErrorCode } from "../../src/protocol/types.js";

describe("errorMessage", () => {
  test("keeps the original sentences", () => {
    assert.equal(errorMessage("overloaded"), "Server is overloaded. Please try again in a moment.");
    assert.equal(errorMessage("rate_limited"), "Rate limit exceeded. Please slow down your requests.");
  });

  test("has a sentence for every code", () => {
    const codes: ErrorCode[] = [
      "invalid_request",
      "payload_too_large",
      "overloaded",
      "rate_limited",
      "model_unavailable",
      "timeout",
      "context_overflow",
      "model_error",
      "invalid_reply",
      "shutting_down",
      "store_unavailable",
      "internal",
      "cancelled",
      "expired",
    ];
    assert.deepEqual(Object.keys(ERROR_TEXT).sort(), [...codes].sort());
    for (const code of codes) assert.ok(errorMessage(code).length > 10, code);
    assert.match(errorMessage("model_unavailable"), /unreachable/);
    assert.match(errorMessage("timeout"), /timed out/);
    assert.match(errorMessage("context_overflow"), /too long/);
    assert.match(errorMessage("shutting_down"), /shutting down.*retry/);
  });

  test("adds a detail", () => {
    assert.equal(
      errorMessage("invalid_request", "message must be a non-empty string"),
      "Invalid request: message must be a non-empty string",
    );
    assert.equal(errorMessage("payload_too_large", "9 bytes"), "Payload too large: 9 bytes");
    assert.equal(
      errorMessage("model_error", "HTTP 500"),
      "The model server could not answer this request (HTTP 500).",
    );
    assert.equal(errorMessage("invalid_request", ""), "Invalid request.");
  });
});

describe("gatewayError", () => {
  test("fills message and retryable", () => {
    assert.deepEqual(gatewayError("overloaded"), {
      code: "overloaded",
      message: "Server is overloaded. Please try again in a moment.",
      retryable: true,
    });
    assert.deepEqual(gatewayError("invalid_request", "x"), {
      code: "invalid_request",
      message: "Invalid request: x",
      retryable: false,
    });
  });
});

describe("formatFailure / formatNotice", () => {
  test("text topics get Error: and the sentence", () => {
    assert.equal(
      formatFailure(
        { topic: "general/assistant_response/s", format: "text" },
        gatewayError("rate_limited"),
        {},
      ),
      "Error: Rate limit exceeded. Please slow down your requests.",
    );
  });

  test("maze topics get a JSON error object", () => {
    assert.equal(
      formatFailure({ topic: "maze/hint/s", format: "maze" }, gatewayError("invalid_request", 'bad "x"'), {}),
      '{"error":"Invalid request: bad \\"x\\""}',
    );
  });

  test("notices", () => {
    assert.equal(formatNotice("Template updated"), '{"hint": "Template updated"}');
    assert.equal(formatNotice("History cleared"), '{"hint": "History cleared"}');
  });
});
