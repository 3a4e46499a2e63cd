/**
 * Recognises a QoS 1 request delivered a second time. After a broker restart or a lost PUBACK,
 * the broker (or the client) sends a request again with the DUP flag; if this process already
 * took it in, answering it again would answer it twice. Only requests with a requestId can be
 * recognised, and only while this process remembers them (`capacity` most recent).
 */
export class RedeliveryFilter {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** Notes a request; true when it is a redelivery of one taken in before. */
  isRepeat(key: string, redelivered: boolean): boolean {
    if (redelivered && this.seen.has(key)) return true;
    this.seen.add(key);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value!);
    return false;
  }
}
