import { LlmqttError, ReplyTimeoutError } from "./errors.js";
import {
  readChunk,
  readReply,
  StreamAssembler,
  type Reply,
  type ReplyBody,
  type StreamChunk,
} from "./replies.js";

/** What a call hands on: pieces of text in order (streaming calls only), then the reply. */
export type StreamEvent = { type: "delta"; text: string } | { type: "reply"; reply: Reply };

/** Where a call's outcome goes: `event` any number of times, then at most one `fail`. */
export interface CallSink {
  event(event: StreamEvent): void;
  fail(error: LlmqttError): void;
}

export interface CallTarget {
  requestId: string;
  project: string;
  sessionId: string;
  replyTopic: string;
}

/**
 * One request waiting for its answer: it reads the reply and the stream chunks published for it,
 * and ends exactly once — with the reply, an error reply, its timeout, an abort or the client's
 * close. `onEnd` runs then (the client forgets the call; after a timeout or abort it asks the
 * gateway to cancel the turn).
 */
export class PendingCall {
  private readonly assembler = new StreamAssembler();
  private readonly started = performance.now();
  /** The text handed on as deltas so far. */
  private shown = "";
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ended = false;
  /** The caller's signal and, for a stream, its own cancel: either ends the call. */
  private readonly signals: AbortSignal[];
  private readonly onAbort = () =>
    this.end(new LlmqttError("cancelled", "cancelled by the caller", false, this.target.requestId));

  constructor(
    readonly target: CallTarget,
    private readonly sink: CallSink,
    private readonly timeoutMs: number,
    signals: readonly (AbortSignal | undefined)[],
    private readonly onEnd: (call: PendingCall, error?: LlmqttError) => void,
  ) {
    this.restartTimer();
    // Listened to one by one, not through AbortSignal.any: on Node 20 that keeps every signal it
    // makes reachable from a caller's long-lived signal, a leak per call.
    this.signals = signals.filter((signal): signal is AbortSignal => signal !== undefined);
    if (this.signals.some((signal) => signal.aborted)) queueMicrotask(this.onAbort);
    else for (const signal of this.signals) signal.addEventListener("abort", this.onAbort, { once: true });
  }

  get done(): boolean {
    return this.ended;
  }

  /** A message for this call; anything that is not its reply or stream topic is ignored. */
  receive(topic: string, payload: string): void {
    if (this.ended) return;
    const { replyTopic, requestId } = this.target;
    if (topic === `${replyTopic}/stream`) {
      const chunk = readChunk(payload, requestId);
      if (chunk !== undefined) for (const ready of this.assembler.accept(chunk)) this.onChunk(ready, topic);
    } else if (topic === replyTopic) {
      this.onFullReply(readReply(payload, requestId), topic);
    }
  }

  /** Ends the call with this error unless it has ended already. */
  fail(error: LlmqttError): void {
    this.end(error);
  }

  private onChunk(chunk: StreamChunk, topic: string): void {
    this.restartTimer();
    if ("delta" in chunk) {
      this.shown += chunk.delta;
      this.sink.event({ type: "delta", text: chunk.delta });
    } else if ("error" in chunk) this.end(chunk.error);
    else this.finish(chunk.reply, topic.slice(0, -"/stream".length));
  }

  /**
   * The full reply also ends a stream whose last chunks have not arrived (or never will: a
   * gateway that does not stream); the text not yet shown goes out as one last delta.
   */
  private onFullReply(body: ReplyBody | LlmqttError, topic: string): void {
    if (body instanceof LlmqttError) return this.end(body);
    if (this.shown !== "" && body.text.startsWith(this.shown)) {
      const rest = body.text.slice(this.shown.length);
      if (rest !== "") this.sink.event({ type: "delta", text: rest });
    } else if (this.shown === "" && body.text !== "") this.sink.event({ type: "delta", text: body.text });
    this.finish(body, topic);
  }

  private finish(body: ReplyBody, topic: string): void {
    if (this.ended) return;
    const { requestId, sessionId } = this.target;
    const reply: Reply = {
      ...body,
      requestId,
      sessionId,
      topic,
      latencyMs: performance.now() - this.started,
    };
    this.sink.event({ type: "reply", reply });
    this.end();
  }

  private end(error?: LlmqttError): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    for (const signal of this.signals) signal.removeEventListener("abort", this.onAbort);
    if (error) this.sink.fail(error);
    this.onEnd(this, error);
  }

  /** The timeout counts from the request, and again from each chunk while the reply streams in. */
  private restartTimer(): void {
    clearTimeout(this.timer);
    const { replyTopic, project, requestId } = this.target;
    this.timer = setTimeout(
      () => this.end(new ReplyTimeoutError(replyTopic, project, this.timeoutMs, requestId)),
      this.timeoutMs,
    );
  }
}
