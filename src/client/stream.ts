import type { CallSink, StreamEvent } from "./call.js";
import type { LlmqttError } from "./errors.js";

/**
 * The events of one streaming call, for `for await`: deltas in order, then `{type: "reply"}`; an
 * error reply, timeout or cancellation is thrown by the loop. Leaving the loop early cancels the
 * call. Events are buffered from the start, so the loop may begin late.
 */
export class ReplyStream implements AsyncIterable<StreamEvent>, CallSink {
  /** Known once the request is published. */
  requestId: string | undefined;
  private readonly queue: StreamEvent[] = [];
  private error: LlmqttError | undefined;
  private finished = false;
  private wake: (() => void) | undefined;

  constructor(private readonly abort: () => void) {}

  /** Ends the call with code `cancelled` and asks the gateway to cancel the turn. */
  cancel(): void {
    if (!this.finished) this.abort();
  }

  event(event: StreamEvent): void {
    this.queue.push(event);
    if (event.type === "reply") this.finished = true;
    this.notify();
  }

  fail(error: LlmqttError): void {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StreamEvent, void, undefined> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next !== undefined) {
          yield next;
          if (next.type === "reply") return;
        } else if (this.error !== undefined) {
          throw this.error;
        } else {
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      }
    } finally {
      this.cancel();
    }
  }

  private notify(): void {
    this.wake?.();
    this.wake = undefined;
  }
}
