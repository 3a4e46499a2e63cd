import assert from "node:assert/strict";

import { parseInbound, type InboundContext, type Mqtt5Request } from "../../src/protocol/inbound.js";
import { RequestSchemas } from "../../src/protocol/replySchema.js";
import type { InboundIntent, TurnRequest } from "../../src/protocol/types.js";

export const DEFAULT_ID = /^default-[0-9a-f]{8}$/;

export function makeContext(
  overrides: Partial<InboundContext> = {},
): InboundContext & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    projects: new Set(["maze", "general", "prompt_portal"]),
    limits: { maxPayloadBytes: 1024, maxMessageChars: 50 },
    maxTokensLimit: 4096,
    replySchemas: new RequestSchemas(2048),
    warn: (message) => warnings.push(message),
    ...overrides,
    warnings,
  };
}

export function parse(
  topic: string,
  payload: string | Buffer | object,
  ctx = makeContext(),
  mqtt5?: Mqtt5Request,
): InboundIntent | undefined {
  const buf = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload), "utf8");
  return mqtt5 === undefined ? parseInbound(topic, buf, ctx) : parseInbound(topic, buf, ctx, mqtt5);
}

export function turnOf(intent: InboundIntent | undefined): TurnRequest {
  assert.ok(intent, "expected an intent");
  assert.equal(intent.type, "turn", JSON.stringify(intent));
  return (intent as Extract<InboundIntent, { type: "turn" }>).turn;
}

export type Rejected = Extract<InboundIntent, { type: "rejected" }>;

export function rejectionOf(intent: InboundIntent | undefined): Rejected {
  assert.ok(intent, "expected an intent");
  assert.equal(intent.type, "rejected", JSON.stringify(intent));
  return intent as Rejected;
}
