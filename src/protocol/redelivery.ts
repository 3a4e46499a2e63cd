import { createHash } from "node:crypto";
import type { InboundIntent } from "./types.js";

/**
 * Recognises a QoS 1 message delivered a second time. After a broker restart or a lost PUBACK,
 * the broker (or the client) sends a message again with the DUP flag; if this process already
 * took it in, acting on it again would answer a turn twice and store it twice. Only DUP-flagged
 * deliveries are checked, so a client repeating itself on purpose ("yes", "yes") is never
 * mistaken for a redelivery. The `capacity` most recent messages are remembered.
 */
export class RedeliveryFilter {
  /** Oldest first (a Set keeps insertion order). */
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** Notes a message; true when it is a redelivery of one taken in before. */
  isRepeat(topic: string, payload: Buffer, intent: InboundIntent, redelivered: boolean): boolean {
    const key = messageKey(topic, payload, intent);
    if (redelivered && this.seen.has(key)) return true;
    this.seen.add(key);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value!);
    return false;
  }
}

/**
 * A request that names itself (its client's `requestId`, on its topic) is known by that name;
 * any other message by a digest of its topic and payload (legacy clients send no request id).
 */
function messageKey(topic: string, payload: Buffer, intent: InboundIntent): string {
  const request = intent.type === "turn" ? intent.turn : intent.type === "rejected" ? intent : undefined;
  if (request?.requestId !== undefined) {
    return JSON.stringify([topic, request.clientId ?? null, request.requestId]);
  }
  // MQTT topics never contain U+0000, so it marks where the topic ends.
  return createHash("sha256").update(topic).update("\0").update(payload).digest("base64");
}
