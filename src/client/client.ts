import type { IClientPublishOptions, MqttClient } from "mqtt";
import { PendingCall, type CallSink, type StreamEvent } from "./call.js";
import { closeConnection, openConnection, type ConnectionOptions } from "./connection.js";
import { LlmqttError } from "./errors.js";
import {
  checkProject,
  randomId,
  requestIdOfTopic,
  requestTopics,
  safeSession,
  type RequestKind,
} from "./protocol.js";
import type { Reply } from "./replies.js";
import { ReplyStream } from "./stream.js";
import { INVALID_TOPIC_CHARS } from "./wire.js";

export interface ConnectOptions extends Partial<
  Pick<ConnectionOptions, "username" | "password" | "clientId">
> {
  /** 5: requests carry Response Topic and Correlation Data (PROTOCOL C2). Default 4 (MQTT 3.1.1). */
  protocolVersion?: 4 | 5;
  /** The session of calls that name none. Default: a fresh `client-xxxxxx`. */
  sessionId?: string;
  /** How long a call waits for its reply (a stream: for its next chunk). Default 60 s. */
  timeoutMs?: number;
  /** The first connection attempt, which is not retried. Default 5 s. */
  connectTimeoutMs?: number;
  /** Reconnect delay once connected; 0 gives up on the first drop. Default 2 s. */
  reconnectPeriodMs?: number;
  /** Told when the broker connection drops or comes back. */
  onConnectionChange?: (event: "lost" | "restored") => void;
}

export interface CallOptions {
  /** Default: the client's session. Made topic-safe the way the gateway does (PROTOCOL B10). */
  sessionId?: string;
  /** Default: a fresh id; it must be a single topic level. */
  requestId?: string;
  /** Default: the client's timeoutMs. */
  timeoutMs?: number;
  /** Aborting ends the call with code `cancelled` and asks the gateway to cancel the turn. */
  signal?: AbortSignal;
  systemPrompt?: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
}

export interface SessionOptions {
  /** Default: the client's session. */
  sessionId?: string;
  /** Every session of the project instead of one. */
  allSessions?: boolean;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const SAMPLING = ["temperature", "topP", "maxTokens"] as const;

/** Connects once (no retry before the first success), then keeps the connection up. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<LlmqttClient> {
  const clientId = options.clientId ?? randomId("llmqtt-client-", 4);
  const mqtt = await openConnection({
    ...options,
    url,
    clientId,
    protocolVersion: options.protocolVersion ?? 4,
  });
  // Only now: a retry loop before the first connect would hide a wrong URL behind a hang.
  mqtt.options.reconnectPeriod = options.reconnectPeriodMs ?? 2000;
  return new LlmqttClient(mqtt, url, clientId, options);
}

/**
 * A client of llmqtt's MQTT protocol: requests with their reply topics and correlation, stream
 * reassembly, timeouts and cancellation. Works in Node and in browsers (MQTT over WebSocket).
 */
export class LlmqttClient {
  readonly sessionId: string;
  private readonly calls = new Map<string, PendingCall>();
  /** Reply prefixes subscribed (or being subscribed) to. */
  private readonly subscriptions = new Map<string, Promise<void>>();
  private readonly requestPrefix = randomId("", 2);
  private requestCount = 0;
  private closed = false;

  constructor(
    private readonly mqtt: MqttClient,
    readonly url: string,
    readonly clientId: string,
    private readonly options: ConnectOptions,
  ) {
    this.sessionId = safeSession(options.sessionId, "client-");
    mqtt.on("message", (topic, payload, packet) =>
      this.onMessage(topic, payload, packet.properties?.correlationData),
    );
    const notify = options.onConnectionChange;
    if (notify) {
      mqtt.on("offline", () => this.closed || notify("lost"));
      mqtt.on("connect", () => notify("restored"));
    }
  }

  get connected(): boolean {
    return this.mqtt.connected;
  }

  get mqtt5(): boolean {
    return this.options.protocolVersion === 5;
  }

  /** One chat turn on `P/user_input`; resolves with the reply, rejects with an LlmqttError. */
  ask(project: string, message: string, options: CallOptions = {}): Promise<Reply> {
    return this.request("chat", project, { message }, options);
  }

  /** A game state on `P/state` (the maze's `maze/state`); the reply's text is the hint JSON. */
  askState(project: string, state: Record<string, unknown>, options: CallOptions = {}): Promise<Reply> {
    return this.request("state", project, state, options);
  }

  /** A chat turn whose reply streams in: deltas in order, then the reply (or the error thrown). */
  stream(project: string, message: string, options: CallOptions = {}): ReplyStream {
    const cancelled = new AbortController();
    const stream = new ReplyStream(() => cancelled.abort());
    this.start("chat", project, { message, stream: true }, options, stream, cancelled.signal).then(
      (requestId) => (stream.requestId = requestId),
      (error: unknown) => stream.fail(asLlmqttError(error, "publish_failed")),
    );
    return stream;
  }

  /** Asks the gateway to cancel a turn, waiting or running (PROTOCOL C9). */
  async cancel(
    project: string,
    requestId: string,
    options: Pick<SessionOptions, "sessionId" | "timeoutMs"> = {},
  ): Promise<void> {
    const sessionId = safeSession(options.sessionId ?? this.sessionId);
    await this.publish(`${checkProject(project)}/cancel`, { sessionId, requestId }, options.timeoutMs);
  }

  /** Replaces a session's system prompt, or the project's default (PROTOCOL A5). */
  async setPrompt(
    project: string,
    prompt: string,
    options: SessionOptions & { reset?: boolean } = {},
  ): Promise<void> {
    const payload =
      options.reset === undefined ? { template: prompt } : { template: prompt, reset: options.reset };
    await this.publish(this.commandTopic("template", project, options), payload, options.timeoutMs);
  }

  /** Drops a session's turns and keeps its system prompt (PROTOCOL A6). */
  async clear(project: string, options: SessionOptions = {}): Promise<void> {
    await this.publish(this.commandTopic("clear_history", project, options), {}, options.timeoutMs);
  }

  /** The gateway forgets the session; its next turn starts afresh with the default prompt. */
  async deleteSession(project: string, options: SessionOptions = {}): Promise<void> {
    await this.publish(this.commandTopic("delete_session", project, options), {}, options.timeoutMs);
  }

  /** Ends the calls still waiting (code `closed`) and the connection; never hangs on a dead broker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const call of [...this.calls.values()]) call.fail(new LlmqttError("closed", "client closed"));
    await closeConnection(this.mqtt);
  }

  private request(
    kind: RequestKind,
    project: string,
    body: Record<string, unknown>,
    options: CallOptions,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const sink: CallSink = {
        event: (event) => {
          if (event.type === "reply") resolve(event.reply);
        },
        fail: reject,
      };
      this.start(kind, project, body, options, sink).catch(reject);
    });
  }

  /**
   * Registers the call, subscribes to its reply topic and publishes the request; returns its id.
   * The call's timeout and signal cover the subscription too (a broker that is away holds it).
   */
  private async start(
    kind: RequestKind,
    project: string,
    body: Record<string, unknown>,
    options: CallOptions,
    sink: CallSink,
    cancel?: AbortSignal,
  ): Promise<string> {
    if (this.closed) throw new LlmqttError("closed", "client closed");
    const sessionId = safeSession(options.sessionId ?? this.sessionId);
    const requestId = this.newRequestId(options.requestId);
    const topics = requestTopics(kind, checkProject(project), sessionId, this.clientId);
    const replyTopic = `${topics.replyPrefix}/${requestId}`;
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const target = { requestId, project, sessionId, replyTopic };
    const call = new PendingCall(target, sink, timeoutMs, [options.signal, cancel], (ended, error) =>
      this.ended(ended, error),
    );
    this.calls.set(requestId, call);
    try {
      await this.subscribe(topics.replyPrefix);
    } catch (error) {
      call.fail(asLlmqttError(error, "subscribe_failed", requestId));
    }
    if (call.done) return requestId;
    const payload = {
      ...body,
      ...turnOptions(options),
      sessionId,
      clientId: this.clientId,
      requestId,
      replyTopic,
    };
    const publish: IClientPublishOptions = { qos: 1 };
    // Kept in the payload too: a gateway on MQTT 3.1.1 never sees the properties.
    // mqtt-packet writes a binary property from a string as its UTF-8 bytes; no Buffer in browsers.
    if (this.mqtt5) {
      publish.properties = { responseTopic: replyTopic, correlationData: requestId as unknown as Buffer };
    }
    // The call is registered first: a fast gateway can answer before the PUBACK arrives.
    this.mqtt
      .publishAsync(topics.input, JSON.stringify({ ...payload, responseFormat: "json" }), publish)
      .catch((error: unknown) => call.fail(asLlmqttError(error, "publish_failed", requestId)));
    return requestId;
  }

  private ended(call: PendingCall, error: LlmqttError | undefined): void {
    const { requestId, project, sessionId } = call.target;
    this.calls.delete(requestId);
    if (this.closed || (error?.code !== "no_reply" && error?.code !== "cancelled")) return;
    // The turn may still be queued or running on the gateway, and nobody waits for it any more.
    // Best effort: if the cancel is lost too, the gateway just answers a turn nobody reads.
    this.cancel(project, requestId, { sessionId }).catch(() => undefined);
  }

  private onMessage(topic: string, payload: Uint8Array, correlationData: Uint8Array | undefined): void {
    const requestId = correlationData
      ? new TextDecoder().decode(correlationData)
      : requestIdOfTopic(topic).requestId;
    this.calls.get(requestId)?.receive(topic, new TextDecoder().decode(payload));
  }

  /** Once per reply prefix; a failed subscription is tried again by the next call. */
  private subscribe(replyPrefix: string): Promise<void> {
    let subscribed = this.subscriptions.get(replyPrefix);
    if (subscribed === undefined) {
      const filter = `${replyPrefix}/#`;
      subscribed = this.mqtt.subscribeAsync(filter, { qos: 1 }).then(
        () => undefined,
        (error: Error) => {
          const reason = `the broker refused the subscription to ${filter}: ${error.message}`;
          throw new LlmqttError("subscribe_failed", reason);
        },
      );
      this.subscriptions.set(replyPrefix, subscribed);
      subscribed.catch(() => this.subscriptions.delete(replyPrefix));
    }
    return subscribed;
  }

  private newRequestId(given: string | undefined): string {
    if (given === undefined) return `${this.requestPrefix}-${++this.requestCount}`;
    if (given === "" || /[+#/]/.test(given) || INVALID_TOPIC_CHARS.test(given) || given === "stream") {
      throw new LlmqttError("invalid_request", `requestId "${given}" must be one topic level without + or #`);
    }
    if (this.calls.has(given))
      throw new LlmqttError("invalid_request", `requestId "${given}" is already waiting`);
    return given;
  }

  private commandTopic(kind: string, project: string, options: SessionOptions): string {
    const base = `${checkProject(project)}/${kind}`;
    return options.allSessions ? base : `${base}/${safeSession(options.sessionId ?? this.sessionId)}`;
  }

  /** QoS 1, so it resolves when the broker has the message; bounded by the call's timeout. */
  private async publish(
    topic: string,
    payload: object,
    timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  ): Promise<void> {
    if (this.closed) throw new LlmqttError("closed", "client closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new LlmqttError(
              "publish_failed",
              `the broker did not take ${topic} within ${timeoutMs / 1000}s`,
              true,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.mqtt.publishAsync(topic, JSON.stringify(payload), { qos: 1 }), timeout]);
    } catch (error) {
      throw asLlmqttError(error, "publish_failed");
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The per-turn fields of a request (PROTOCOL A2), those that were given. */
function turnOptions(options: CallOptions): Record<string, unknown> {
  const fields = ["systemPrompt", ...SAMPLING] as const;
  return Object.fromEntries(
    fields.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]),
  );
}

function asLlmqttError(
  error: unknown,
  code: "publish_failed" | "subscribe_failed",
  requestId?: string,
): LlmqttError {
  if (error instanceof LlmqttError) return error;
  return new LlmqttError(code, error instanceof Error ? error.message : String(error), true, requestId);
}

export type { StreamEvent };
