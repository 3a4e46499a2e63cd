import type { GatewayMetrics } from "../observability/metrics.js";
import { noticeTarget } from "../protocol/commands.js";
import {
  formatAnswer,
  formatFailure,
  formatNotice,
  gatewayError,
  replyProperties,
} from "../protocol/outbound.js";
import { formatStreamDelta, formatStreamDone, formatStreamError, streamTopic } from "../protocol/stream.js";
import type { ErrorCode, GatewayError, ReplyTarget, TurnRequest } from "../protocol/types.js";
import type { PublishOptions } from "../transport/mqttTransport.js";
import { StreamBatcher } from "./streamBatcher.js";
import type { TurnOutcome } from "./turnRunner.js";

/**
 * The one thing replies need from the transport (MqttTransport.send): a publish that nothing
 * waits on (QoS 1 and the broker see to delivery; the transport logs a failure).
 */
export interface Publisher {
  send(topic: string, payload: string, options?: PublishOptions): void;
}

/** Ids a failure names: a turn, a rejected intent, or just a session. */
export interface ReplyIds {
  project: string;
  sessionId?: string;
  requestId?: string;
}

/** A turn's stream, open while the model generates. */
export interface OpenStream {
  onDelta(text: string): void;
  /** Publishes what is pending and the final chunk; the full reply goes out separately. */
  close(outcome: TurnOutcome): void;
}

/**
 * Everything llmqtt publishes in answer to a client: replies, errors, notices and stream chunks,
 * formatted by the protocol module, with MQTT 5 properties, counted in the metrics.
 */
export class ReplyPublisher {
  constructor(
    private readonly transport: Publisher,
    private readonly metrics: GatewayMetrics,
    private readonly options: { streamFlushMs: number; mqtt5: boolean },
    private readonly now: () => number = Date.now,
  ) {}

  answer(turn: TurnRequest, outcome: TurnOutcome): void {
    if (!outcome.ok) return this.failure(turn.reply, outcome.error, turn);
    this.metrics.messagePublished(turn.project, "reply");
    this.transport.send(
      turn.reply.topic,
      formatAnswer(turn, outcome),
      this.replyOptions(turn.reply, turn, "ok"),
    );
  }

  failure(target: ReplyTarget, error: GatewayError, ids: ReplyIds): void {
    this.metrics.messagePublished(ids.project, "error");
    this.transport.send(
      target.topic,
      formatFailure(target, error, ids),
      this.replyOptions(target, ids, "error"),
    );
  }

  refusal(turn: TurnRequest, code: ErrorCode): void {
    this.failure(turn.reply, gatewayError(code), turn);
  }

  /** `{"hint": ...}` on `P/hint/<sid>` after a template or clear (A5, A6), for projects with a game state. */
  notice(project: string, sessionId: string, hint: string): void {
    const target = noticeTarget(project, sessionId);
    if (!target) return;
    this.metrics.messagePublished(project, "notice");
    this.transport.send(target.topic, formatNotice(hint));
  }

  /** Undefined when the turn did not ask to stream. */
  openStream(turn: TurnRequest): OpenStream | undefined {
    if (!turn.stream) return undefined;
    const topic = streamTopic(turn.reply.topic);
    const options = this.replyOptions(turn.reply, turn, "ok");
    const started = this.now();
    let ending: TurnOutcome | undefined;
    const publish = (payload: string) => {
      this.metrics.messagePublished(turn.project, "stream");
      this.transport.send(topic, payload, options);
    };
    const batcher = new StreamBatcher(
      {
        delta: (seq, text) => {
          if (seq === 0) this.metrics.firstToken(turn.project, this.now() - started);
          publish(formatStreamDelta(turn.requestId, seq, text));
        },
        done: (seq) => {
          if (ending?.ok) {
            const { text, finishReason, usage } = ending;
            publish(formatStreamDone(turn.requestId, seq, { response: text, finishReason, usage }));
          } else if (ending) publish(formatStreamError(turn.requestId, seq, ending.error));
        },
      },
      this.options.streamFlushMs,
    );
    return {
      onDelta: (text) => batcher.push(text),
      close: (outcome) => {
        ending = outcome;
        batcher.finish();
      },
    };
  }

  /** MQTT 5 correlation data and user properties (C2); nothing to build on MQTT 3.1.1. */
  private replyOptions(
    target: ReplyTarget,
    ids: ReplyIds,
    status: "ok" | "error",
  ): PublishOptions | undefined {
    if (!this.options.mqtt5) return undefined;
    return {
      properties: replyProperties(
        target,
        { sessionId: ids.sessionId ?? "", requestId: ids.requestId },
        status,
      ),
    };
  }
}
