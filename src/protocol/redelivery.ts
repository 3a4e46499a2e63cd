/**
 * Recognises a QoS 1 message delivered a second time. After a broker restart or a lost PUBACK,
 * the broker (or the client) sends a message again with the DUP flag; if this process already
 * took it in, acting on it again would answer a turn twice and store it twice. A message is
 * known by its topic and payload (legacy clients send no request id), while this process
 * remembers it (`capacity` most recent). Only DUP-flagged deliveries are checked, so a client
 * repeating itself on purpose ("yes", "yes") is never mistaken for a redelivery.
 *
 * Every message passes through here, so it is remembered as a 64-bit digest in a ring of plain
 * integers: nothing is allocated per message and nothing outlives it on the heap for the
 * collector to copy (a set of `topic + digest` strings kept 10,000 strings alive, and promoted
 * each one). Only DUP deliveries, which are rare, pay for a scan of the ring.
 */
export class RedeliveryFilter {
  /** Two 32-bit lanes per remembered message, oldest overwritten first. */
  private readonly digests: Int32Array;
  private next = 0;
  private remembered = 0;

  constructor(private readonly capacity = 10_000) {
    this.digests = new Int32Array(capacity * 2);
  }

  /** Notes a message; true when it is a redelivery of one taken in before. */
  isRepeat(topic: string, payload: Buffer, redelivered: boolean): boolean {
    let low = 0x811c9dc5;
    let high = 0x5bd1e995 ^ payload.length;
    for (let i = 0; i < topic.length; i++) {
      const code = topic.charCodeAt(i);
      low = Math.imul(low ^ code, 0x01000193);
      high = mix(high, code);
    }
    // A separator, so that topic "ab" + payload "c" differs from topic "a" + payload "bc".
    low = Math.imul(low ^ 0xffff, 0x01000193);
    for (let i = 0; i < payload.length; i++) {
      const byte = payload[i]!;
      low = Math.imul(low ^ byte, 0x01000193);
      high = mix(high, byte);
    }
    if (redelivered && this.has(low, high)) return true;
    this.digests[this.next * 2] = low;
    this.digests[this.next * 2 + 1] = high;
    this.next = (this.next + 1) % this.capacity;
    if (this.remembered < this.capacity) this.remembered++;
    return false;
  }

  private has(low: number, high: number): boolean {
    for (let i = 0; i < this.remembered; i++) {
      if (this.digests[i * 2] === low && this.digests[i * 2 + 1] === high) return true;
    }
    return false;
  }
}

/** A second, differently built 32-bit lane (multiply-xorshift), so the two rarely collide together. */
function mix(hash: number, value: number): number {
  const multiplied = Math.imul(hash ^ value, 0x5bd1e995);
  return multiplied ^ (multiplied >>> 15);
}
