import { setMaxListeners } from "node:events";
import { createModelPool } from "./backends/fromSettings.js";
import type { BackendPool } from "./backends/pool.js";
import { Bridge } from "./bridge/bridge.js";
import { maskSecrets } from "./config/file.js";
import { ProjectCatalog } from "./config/projects.js";
import { BridgeSettingsSchema, type MqttSettings, type Settings } from "./config/schema.js";
import type { MessageDispatcher } from "./dispatcher.js";
import { createPipeline } from "./pipeline.js";
import { RedisSessionOrder } from "./scaleout/sessionOrder.js";
import { connectRedis } from "./sessions/redisConnection.js";
import { HttpAccess } from "./observability/access.js";
import { ConsoleApi } from "./observability/api.js";
import { registerDashboard } from "./observability/dashboard.js";
import { HttpEndpoint, send, type Readiness } from "./observability/httpServer.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { redactUrl } from "./observability/redact.js";
import { GatewayMetrics, type ServerStatus } from "./observability/metrics.js";
import type { GatewaySnapshot } from "./observability/snapshot.js";
import { TranscriptWriter } from "./observability/transcript.js";
import { subscriptionTopics } from "./protocol/topics.js";
import { TurnScheduler } from "./scheduler/scheduler.js";
import { SessionManager } from "./sessions/manager.js";
import { createSessionStore, describeSessionStore } from "./sessions/createStore.js";
import type { SessionStore } from "./sessions/types.js";
import { chooseBroker } from "./transport/brokerChoice.js";
import type { EmbeddedBroker } from "./transport/embeddedBroker.js";
import { defaultClientId, MqttTransport } from "./transport/mqttTransport.js";
import { StatusReporter } from "./transport/status.js";
import { VERSION } from "./version.js";

export interface GatewayDeps {
  logger?: Logger;
}

/**
 * Builds the pieces from settings, starts them in order and stops them in reverse. The path of
 * a message: transport → dispatcher (protocol, scheduler) → turn runner → backend → replies.
 */
export class Gateway {
  readonly settings: Settings;
  readonly projects: ProjectCatalog;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** Every model server, even a single one, sits in a pool: one way to count slots and report status. */
  readonly backend: BackendPool;
  readonly sessions: SessionManager;
  readonly scheduler: TurnScheduler;
  /** Base URL of the HTTP endpoint once started. */
  httpUrl?: string;
  private readonly store: SessionStore;
  private readonly transport: MqttTransport;
  private readonly status: StatusReporter;
  private readonly transcript?: TranscriptWriter;
  private readonly http?: HttpEndpoint;
  private readonly bridge?: Bridge;
  private readonly dispatcher: MessageDispatcher;
  /** Per-session order across the instances of a share group. */
  private readonly order?: RedisSessionOrder;
  /** Aborts model calls still running when the shutdown grace period is over. */
  private readonly shutdownController = new AbortController();
  private broker?: EmbeddedBroker;
  private statsTimer?: NodeJS.Timeout;
  private stopped?: Promise<void>;
  private connects = 0;
  private readonly startedAt = Date.now();
  private brokerUrl?: string;
  /** MQTT over WebSocket for browsers: the embedded broker's, or the configured one. */
  private brokerWsUrl?: string;

  constructor(settings: Settings, deps: GatewayDeps = {}) {
    // Every running turn listens to the shutdown (and stops listening when it ends): more than
    // Node's default of 10 at once is the normal case, not a leak to warn about.
    setMaxListeners(0, this.shutdownController.signal);
    const clientId = settings.mqtt.clientId ?? defaultClientId();
    this.settings = { ...settings, mqtt: { ...settings.mqtt, clientId } };
    this.projects = new ProjectCatalog(settings);
    const format = settings.logging.format ?? (process.stdout.isTTY ? "pretty" : "json");
    const logger = deps.logger ?? createLogger(settings.logging.level, format);
    this.logger = logger;
    this.backend = createModelPool(settings, logger);
    this.store = createSessionStore(settings.sessions, logger);
    this.sessions = new SessionManager(this.store, {
      defaultPrompt: (p) => this.projects.get(p).systemPrompt,
    });
    this.scheduler = new TurnScheduler({
      concurrency: this.capacity(),
      maxQueue: settings.scheduler.maxQueue,
      rateLimitPerMinute: settings.scheduler.rateLimitPerMinute,
    });
    if (settings.logging.transcript) {
      const { transcriptPath, transcriptMaxBytes, transcriptFiles } = settings.logging;
      this.transcript = new TranscriptWriter(transcriptPath, transcriptMaxBytes, transcriptFiles);
    }
    this.metrics = new GatewayMetrics({
      queueDepth: () => this.scheduler.queued,
      inFlight: () => this.scheduler.inFlight,
      activeSessions: () => this.sessions.count(),
      brokerConnected: () => this.transport.connected,
      servers: () => this.serverStatuses(),
    });

    const statusTopic = `${this.projects.names[0]}/status`;
    if (settings.mqtt.shareGroup) {
      const { redis } = settings.sessions;
      this.order = new RedisSessionOrder({
        connect: (name) => connectRedis(redis, logger, name),
        keyPrefix: redis.keyPrefix,
        instanceId: clientId,
        holdTtlMs: SESSION_HOLD_TTL_MS,
        idleTtlMs: settings.sessions.idleTimeoutSec * 1000,
        logger,
      });
    }
    const dispatcher = createPipeline({
      settings: this.settings,
      projects: this.projects,
      scheduler: this.scheduler,
      sessions: this.sessions,
      backend: this.backend,
      // The transport is made after the pipeline, whose dispatcher it feeds.
      publisher: { send: (topic, payload, options) => this.transport.send(topic, payload, options) },
      metrics: this.metrics,
      logger,
      transcript: this.transcript,
      shutdown: this.shutdownController.signal,
      order: this.order,
    });
    this.dispatcher = dispatcher;
    this.transport = new MqttTransport(this.settings.mqtt, {
      logger,
      subscriptions: subscriptionTopics(this.projects.names, settings.mqtt.shareGroup),
      will: StatusReporter.lastWill(statusTopic, clientId),
      onMessage: (topic, payload, packet) => dispatcher.handle(topic, payload, packet),
      onReady: () => {
        if (this.connects++ > 0) this.metrics.brokerReconnected();
        this.status.announce();
      },
    });
    this.status = new StatusReporter(this.transport, statusTopic, clientId, settings.statusIntervalSec);
    if (settings.bridge.enabled) {
      this.bridge = new Bridge({
        baseTopic: bridgeTopic(settings, clientId),
        healthIntervalSec: settings.bridge.healthIntervalSec,
        allow: settings.bridge.allow,
        mqtt: this.settings.mqtt as MqttSettings & { clientId: string },
        logger,
        projects: this.projects,
        sessions: this.sessions,
        snapshot: () => this.snapshot(),
        info: async () => ({
          version: VERSION,
          projects: this.projects.names,
          servers: this.serverStatuses(),
          config: maskSecrets(this.settings),
        }),
      });
    }
    if (settings.http.enabled) {
      this.http = new HttpEndpoint({
        host: settings.http.host,
        port: settings.http.port,
        logger,
        readiness: () => this.readiness(),
        metrics: () => this.metrics.text(),
        metricsContentType: this.metrics.registry.contentType,
        access: new HttpAccess(settings.http),
      });
      this.http.route("/api/status", async (_req, res) => {
        try {
          send(res, 200, "application/json", JSON.stringify(await this.snapshot()));
        } catch (error) {
          // The session store is the part of the snapshot that can fail (Redis down, SQLite locked).
          logger.warn({ err: error }, "status snapshot failed");
          send(res, 503, "application/json", JSON.stringify({ error: (error as Error).message }));
        }
      });
      registerDashboard(this.http, { logger });
      new ConsoleApi({
        projects: this.projects,
        sessions: this.sessions,
        logger,
        maxBodyBytes: settings.limits.maxPayloadBytes,
      }).register(this.http);
    }
  }

  /**
   * Starts every part in order. On failure (e.g. a StartupError: the broker refused llmqtt) what
   * was started is stopped again before the error is passed on.
   */
  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.logger.info({ projects: this.projects.names, slots: this.scheduler.concurrency }, "llmqtt ready");
  }

  private async startParts(): Promise<void> {
    await this.store.start();
    this.logger.info(describeSessionStore(this.settings.sessions), "session store ready");
    this.backend.onHealthChange(() => {
      const slots = this.capacity();
      if (slots === this.scheduler.concurrency) return;
      this.scheduler.setConcurrency(slots);
      this.logger.info({ slots }, "model calls in flight at once");
    });
    this.backend.onHealthChange(() => void this.bridge?.refreshInfo());
    await this.backend.start();
    this.scheduler.setConcurrency(this.capacity());
    this.adviseIfNoModel();
    this.httpUrl = await this.http?.start();
    const { url, credentials, wsUrl, embedded } = await chooseBroker(this.settings, this.logger);
    this.broker = embedded;
    this.brokerUrl = url;
    this.brokerWsUrl = wsUrl;
    await this.order?.start();
    await this.transport.start(url, credentials);
    await this.bridge?.start(url, credentials);
    this.startStatsLine();
  }

  /**
   * Graceful drain: nothing new is taken in (new requests are answered "shutting down"), turns in
   * flight and queued get the grace period to finish, then whatever is still queued is answered
   * "shutting down" and model calls still running are aborted (answered the same way). Then
   * `offline`, and every connection and store is closed, each given a bounded time whatever the
   * broker, store or model server does. Calling it again returns the same promise.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopParts();
    return this.stopped;
  }

  private async stopParts(): Promise<void> {
    clearInterval(this.statsTimer);
    const graceMs = this.settings.shutdown.graceSec * 1000;
    const drained = this.scheduler.drain(graceMs);
    this.dispatcher.stopAccepting();
    if (!(await settlesWithin(drained, graceMs))) {
      this.logger.warn(
        { inFlight: this.scheduler.inFlight, graceSec: this.settings.shutdown.graceSec },
        "grace period over: aborting model calls still running",
      );
      this.shutdownController.abort();
      await settlesWithin(drained, ABORT_WAIT_MS);
    }
    await this.closeParts([
      ["session order", () => this.order?.stop()],
      ["status", () => this.status.stop()],
      ["bridge", () => this.bridge?.stop()],
      ["MQTT connection", () => this.transport.stop()],
      ["embedded broker", () => this.broker?.stop()],
      ["HTTP endpoint", () => this.http?.stop()],
      ["model servers", () => this.backend.stop()],
      ["session store", () => this.store.stop()],
      ["transcript", () => this.transcript?.close()],
    ]);
    this.logger.info("llmqtt stopped");
  }

  /**
   * Stops the parts in order within CLOSE_WAIT_MS in all: one that fails or takes too long (a
   * broker or Redis that went away with a publish or command in flight) is logged and left behind.
   */
  private async closeParts(parts: [string, () => Promise<void> | undefined][]): Promise<void> {
    const deadline = Date.now() + CLOSE_WAIT_MS;
    for (const [part, close] of parts) {
      const closed = Promise.resolve()
        .then(close)
        .catch((error: unknown) => this.logger.warn({ err: error, part }, "stopping failed"));
      const waitMs = Math.max(deadline - Date.now(), LATE_PART_WAIT_MS);
      if (!(await settlesWithin(closed, waitMs)))
        this.logger.warn({ part }, "did not stop in time; shutting down without it");
    }
  }

  /**
   * Concurrency follows capacity: the pool's usable slots (configured, else reported by the
   * servers). With no server usable, turns still run so that each gets its error reply at once.
   */
  private capacity(): number {
    return this.backend.health().slots ?? this.settings.server.defaultSlots;
  }

  /** A newcomer's first start usually has no model yet: say exactly what to do, once. */
  private adviseIfNoModel(): void {
    const health = this.backend.health();
    if (health.healthy) return;
    this.logger.warn(
      `No model available (${health.detail ?? "not reachable"}). ` +
        "Start a model server, e.g. `llama-server -m model.gguf --jinja --parallel 4 --port 8080`, " +
        "and point --server-url at it, or run a model inside llmqtt: `--model qwen3-0.6b` downloads a " +
        "small one once (see `serve --help` for the others), `--model path/to/model.gguf` loads a file. " +
        "Until then every turn is answered with an error; llmqtt picks the model up as soon as it appears.",
    );
  }

  /** The gateway at this moment, for the dashboard and the bridge. */
  async snapshot(): Promise<GatewaySnapshot> {
    const byProject: Record<string, number> = {};
    for (const project of this.projects.names)
      byProject[project] = (await this.sessions.list(project)).length;
    return {
      version: VERSION,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      broker: {
        connected: this.transport.connected,
        // Published on the bridge and served over HTTP: the connection's password stays here.
        url: this.brokerUrl && redactUrl(this.brokerUrl),
        wsUrl: this.brokerWsUrl,
      },
      servers: this.serverStatuses(),
      scheduler: {
        queued: this.scheduler.queued,
        inFlight: this.scheduler.inFlight,
        concurrency: this.scheduler.concurrency,
      },
      totals: { ...this.metrics.totals },
      sessions: { total: await this.sessions.count(), byProject },
      projects: this.projects.names,
      recentTurns: this.metrics.recent.list(),
      promptCache: this.metrics.promptCache.byProject(),
    };
  }

  private readiness(): Readiness {
    const model = this.backend.health();
    const broker = this.brokerCheck();
    return {
      ready: broker.ok && model.healthy,
      checks: {
        broker,
        model: { ok: model.healthy, ...(model.detail ? { detail: model.detail } : {}) },
      },
    };
  }

  private brokerCheck(): { ok: boolean; detail?: string } {
    if (!this.transport.connected) return { ok: false, detail: "not connected to the MQTT broker" };
    if (!this.transport.listening) return { ok: false, detail: "requests not subscribed yet, or refused" };
    return { ok: true };
  }

  private serverStatuses(): ServerStatus[] {
    return this.backend
      .status()
      .map(({ coolingDown, healthy, ...rest }) => ({ ...rest, healthy: healthy && !coolingDown }));
  }

  private startStatsLine(): void {
    const intervalSec = this.settings.logging.statsIntervalSec;
    if (intervalSec <= 0) return;
    this.statsTimer = setInterval(() => {
      this.logger.info(
        {
          ...this.metrics.totals,
          queueDepth: this.scheduler.queued,
          inFlight: this.scheduler.inFlight,
          avgLatencyMs: this.metrics.takeAverageLatencyMs(),
        },
        "stats",
      );
    }, intervalSec * 1000);
    this.statsTimer.unref();
  }
}

/** How long a dead instance's turns keep their sessions blocked in a share group. */
const SESSION_HOLD_TTL_MS = 10_000;
/** Aborted model calls end at once; this only bounds shutdown if one does not. */
const ABORT_WAIT_MS = 2000;
/** Closing every connection and store after the drain, at most (see Gateway.closeParts). */
const CLOSE_WAIT_MS = 5000;
/** Each part still gets this long to close once CLOSE_WAIT_MS is over. */
const LATE_PART_WAIT_MS = 100;

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return settled;
}

/**
 * In a share group every instance has its own retained state and info, so the default bridge
 * topic gets the instance's client id appended; a configured topic is taken as it is.
 */
function bridgeTopic(settings: Settings, clientId: string): string {
  const { baseTopic } = settings.bridge;
  const isDefault = baseTopic === BridgeSettingsSchema.parse({}).baseTopic;
  return settings.mqtt.shareGroup && isDefault ? `${baseTopic}/${clientId}` : baseTopic;
}
