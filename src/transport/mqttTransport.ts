import type { Socket } from "node:net";
import { hostname } from "node:os";
import mqtt, {
  type IClientOptions,
  type IClientPublishOptions,
  type IPublishPacket,
  type MqttClient,
} from "mqtt";
import type { MqttSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import { redactUrl } from "../observability/redact.js";
import { StartupError, startupFailure, subscriptionRefused } from "./startupErrors.js";
import { TakeoverBackoff } from "./takeover.js";
import { tlsClientOptions } from "./tls.js";

export interface LastWill {
  topic: string;
  payload: string;
  retain: boolean;
}

export interface TransportOptions {
  logger: Logger;
  /** Topics subscribed (at mqtt.qos) on every connect, so a reconnect never loses them. */
  subscriptions: string[];
  will?: LastWill;
  /**
   * Takes in one inbound message. A returned promise delays its acknowledgement until it
   * settles; a rejected one leaves the message unacknowledged for the broker to deliver again.
   */
  onMessage: (topic: string, payload: Buffer, packet: IPublishPacket) => void | Promise<void>;
  /** Runs after each (re)connect once the subscriptions are in place. */
  onReady?: () => void;
  /** How long a subscription the broker refused after start-up waits to be asked again; 10 s. */
  resubscribeRetryMs?: number;
}

export interface PublishOptions {
  retain?: boolean;
  /** Default: the configured mqtt.qos. */
  qos?: 0 | 1 | 2;
  /** MQTT 5 properties (correlation data, user properties); only on an MQTT 5 connection. */
  properties?: IClientPublishOptions["properties"];
}

/** The external broker's URL, or undefined when none is configured (the embedded one is used). */
export function brokerUrl(settings: MqttSettings): string | undefined {
  if (settings.url) return settings.url;
  return settings.host === undefined ? undefined : `mqtt://${settings.host}:${settings.port}`;
}

/**
 * Stable across restarts, so the broker session (subscriptions, requests queued meanwhile) is
 * found again; the host name keeps instances on different machines apart.
 */
export function defaultClientId(): string {
  return `llmqtt-${hostname().replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** Owns the one broker connection: connect, resubscribe, publish, last-will, clean end. */
export class MqttTransport {
  readonly clientId: string;
  private client?: MqttClient;
  private readonly log: Logger;
  /** While start() waits for the first connection: rejects it (stop() called meanwhile). */
  private abandonStart?: () => void;
  /** The subscriptions are in place on the current connection. */
  private subscribed = false;
  private resubscribeTimer?: NodeJS.Timeout;

  constructor(
    private readonly settings: MqttSettings,
    private readonly options: TransportOptions,
  ) {
    this.clientId = settings.clientId ?? defaultClientId();
    this.log = options.logger.child({ module: "transport" });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connected with the subscriptions in place: requests can arrive. */
  get listening(): boolean {
    return this.connected && this.subscribed;
  }

  /**
   * Connects and resolves once the first subscription is made; reconnects forever after. Rejects
   * with a StartupError when the broker refuses llmqtt (credentials, certificate, subscription)
   * or stop() is called first; an unreachable broker is retried.
   */
  start(url: string, credentials: { username?: string; password?: string } = this.settings): Promise<void> {
    const { will } = this.options;
    const shownUrl = redactUrl(url);
    const usesTls = /^(mqtts|wss):/.test(url);
    const { caFile, certFile, keyFile } = this.settings.tls;
    if (!usesTls && (caFile || certFile || keyFile)) {
      this.log.warn(
        { url: shownUrl },
        "TLS certificates are configured but the broker URL is not mqtts:// or wss://: connecting without TLS",
      );
    }
    const clientOptions: IClientOptions = {
      clientId: this.clientId,
      username: credentials.username,
      password: credentials.password,
      keepalive: this.settings.keepaliveSec,
      protocolVersion: this.settings.protocolVersion,
      reconnectPeriod: this.settings.reconnectPeriodMs,
      clean: this.settings.clean,
      ...(this.settings.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: this.settings.sessionExpirySec } }
        : {}),
      ...(usesTls ? tlsClientOptions(this.settings.tls) : {}),
      // We subscribe ourselves on every connect; MQTT.js's own resubscribe would double it.
      resubscribe: false,
      // MQTT.js otherwise pre-builds a Buffer for each of the 65,536 message ids on the first
      // write: 6.8 MB of heap for ever, and a larger heap makes every young-generation collection
      // of a busy gateway slower (docs/performance.md). Building a 2-byte Buffer per packet costs less.
      writeCache: false,
      will: will
        ? { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: will.retain }
        : undefined,
    };
    this.log.info(
      { url: shownUrl, clientId: this.clientId, clean: this.settings.clean },
      "connecting to MQTT broker",
    );
    // A refusal after the first connection (e.g. a password changed on the broker) is retried.
    const client = mqtt.connect(url, { ...clientOptions, reconnectOnConnackError: true });
    this.client = client;
    const backoff = new TakeoverBackoff(client, this.settings.reconnectPeriodMs, this.log);

    client.handleMessage = (packet, acknowledge) => this.receive(packet, acknowledge);
    client.on("offline", () => {
      if (!backoff.lastCloseWasTakeover)
        this.log.warn({ url: shownUrl }, "MQTT broker unreachable; retrying");
    });
    client.on("reconnect", () => this.log.debug({ url: shownUrl }, "MQTT reconnecting"));
    client.on("close", () => (this.subscribed = false));

    return new Promise((resolve, reject) => {
      let ready = false;
      // Until the first connection is ready, a failure retrying cannot fix ends the start.
      const fail = (error: StartupError): void => {
        this.client = undefined;
        this.abandonStart = undefined;
        client.end(true);
        reject(error);
      };
      this.abandonStart = () => fail(new StartupError("stopped before the MQTT broker connection was ready"));
      client.on("error", (error) => {
        const fatal = ready ? undefined : startupFailure(error, shownUrl, this.settings.protocolVersion);
        if (fatal) return fail(fatal);
        this.log.warn({ err: error.message, url: shownUrl }, "MQTT error");
      });
      client.on("connect", (connack) => {
        this.disableNagle(client);
        this.log.info({ url: shownUrl, sessionPresent: connack.sessionPresent }, "MQTT connected");
        this.subscribe(client).then(
          () => {
            this.options.onReady?.();
            if (ready) return;
            ready = true;
            this.abandonStart = undefined;
            resolve();
          },
          (error: Error) => {
            if (!ready) return fail(subscriptionRefused(error, shownUrl, this.options.subscriptions));
            this.subscribeLater(client, error);
          },
        );
      });
    });
  }

  /**
   * Never rejects: a failed publish is logged and reported as false. MQTT.js's callback rather
   * than publishAsync: one promise per message instead of three, held until the broker's PUBACK.
   */
  publish(topic: string, payload: string | Buffer, options?: PublishOptions): Promise<boolean> {
    return new Promise((resolve) => this.send(topic, payload, options, resolve));
  }

  /**
   * A publish that resolves false when the broker has not acknowledged it within `ms`, for the
   * last messages of a shutdown: a broker going away at the same moment must not hold it up.
   */
  publishWithin(topic: string, payload: string, options: PublishOptions, ms: number): Promise<boolean> {
    return Promise.race([this.publish(topic, payload, options), delay(ms)]);
  }

  /**
   * Publishes without a promise, for messages nothing waits on (replies: QoS 1 and the broker see
   * to their delivery); a failure is logged, and `sent` told whether the message went.
   */
  send(
    topic: string,
    payload: string | Buffer,
    options?: PublishOptions,
    sent?: (ok: boolean) => void,
  ): void {
    const client = this.client;
    if (!client) return sent?.(false);
    const done = (error?: Error): void => {
      if (error) this.log.warn({ topic, err: error.message }, "publish failed");
      sent?.(!error);
    };
    try {
      client.publish(topic, payload, this.clientPublishOptions(options), done);
    } catch (error) {
      done(error as Error);
    }
  }

  /**
   * MQTT.js copies these over its defaults (`{ ...defaults, ...options }`); a key the defaults
   * lack, such as `properties`, takes V8 off its fast path for that copy (~0.6 us a message), so
   * it is passed only when there are properties to send.
   */
  private clientPublishOptions(options: PublishOptions = {}): IClientPublishOptions {
    const qos = options.qos ?? this.settings.qos;
    const retain = options.retain ?? false;
    return options.properties ? { qos, retain, properties: options.properties } : { qos, retain };
  }

  async stop(): Promise<void> {
    this.abandonStart?.();
    clearTimeout(this.resubscribeTimer);
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    // A graceful end waits for in-flight QoS 1 publishes: none can be acknowledged while the
    // broker is away, and a broker that does not answer must not hang the shutdown either.
    const ended =
      client.connected && (await Promise.race([client.endAsync(false).then(() => true), delay(END_WAIT_MS)]));
    if (!ended) {
      client.end(true);
      (client.stream as Partial<Socket> | undefined)?.destroy?.();
    }
  }

  /**
   * MQTT.js sends a QoS 1 request's PUBACK once `acknowledge` is called, and reads no further
   * packet until then: the request is acknowledged only after onMessage has taken it in (queued
   * or answered), and one that could not be taken in is left for the broker to deliver again.
   */
  private receive(packet: IPublishPacket, acknowledge: (error?: Error) => void): void {
    let taken: void | Promise<void> = undefined;
    try {
      taken = this.options.onMessage(packet.topic, packet.payload as Buffer, packet);
    } catch (error) {
      this.log.error({ err: error, topic: packet.topic }, "inbound message handler failed");
    }
    if (!taken) return acknowledge();
    taken.then(
      () => acknowledge(),
      (error: unknown) => {
        this.log.error(
          { err: error, topic: packet.topic },
          "inbound message not taken in; left unacknowledged",
        );
        // Dropping the connection is the only way to get it delivered again (session kept).
        (this.client?.stream as Partial<Socket> | undefined)?.destroy?.();
      },
    );
  }

  private async subscribe(client: MqttClient): Promise<void> {
    await client.subscribeAsync(this.options.subscriptions, { qos: this.settings.qos });
    this.subscribed = true;
    this.log.info({ topics: this.options.subscriptions }, "subscribed");
  }

  /**
   * After start-up a refused subscription (an ACL changed on the broker) leaves llmqtt connected
   * but deaf: it says so, is not ready (/readyz), and asks again until the broker agrees.
   */
  private subscribeLater(client: MqttClient, error: Error): void {
    const retryMs = this.options.resubscribeRetryMs ?? RESUBSCRIBE_RETRY_MS;
    this.log.error(
      { err: error.message, topics: this.options.subscriptions },
      `subscribe failed: no requests arrive; trying again in ${retryMs / 1000} s`,
    );
    clearTimeout(this.resubscribeTimer);
    this.resubscribeTimer = setTimeout(() => {
      // A new connection subscribes by itself; a stopped transport does not try again.
      if (this.client !== client || !client.connected) return;
      this.subscribe(client).then(
        () => this.options.onReady?.(),
        (again: Error) => this.subscribeLater(client, again),
      );
    }, retryMs);
    this.resubscribeTimer.unref();
  }

  /**
   * Replies are small writes right after the PUBACK of the request; with Nagle on, the kernel
   * holds them until that ACK is acknowledged (~40 ms with delayed ACKs).
   */
  private disableNagle(client: MqttClient): void {
    if (!this.settings.noDelay) return;
    const socket = client.stream as unknown as Partial<Socket>;
    if (typeof socket.setNoDelay === "function") socket.setNoDelay(true);
  }
}

/** How long a refused subscription waits before it is asked for again. */
const RESUBSCRIBE_RETRY_MS = 10_000;

/** How long a clean end may wait for the broker to acknowledge publishes in flight. */
const END_WAIT_MS = 3000;

function delay(ms: number): Promise<false> {
  return new Promise((resolve) => setTimeout(() => resolve(false), ms).unref());
}
