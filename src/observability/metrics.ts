import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { TokenUsage } from "../backends/types.js";
import { PromptCacheStats } from "./promptCache.js";
import { RecentTurns } from "./snapshot.js";

/** One model server as the metrics see it (the backend pool reports these). */
export interface ServerStatus {
  name: string;
  healthy: boolean;
  slots: number;
  inFlight: number;
  served: number;
  failed: number;
}

/** Live values read when /metrics is scraped, so nothing has to push them. */
export interface MetricSources {
  queueDepth(): number;
  inFlight(): number;
  activeSessions(): Promise<number>;
  brokerConnected(): boolean;
  servers(): ServerStatus[];
}

export type InboundKind =
  "user_input" | `${string}_state` | "cancel" | "template" | "clear_history" | "delete_session" | "invalid";
export type OutboundKind = "reply" | "error" | "notice" | "stream";

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];

/** The server's count as sent, if usable: prom-client throws on a negative or non-number. */
function tokenCount(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * A labelled metric's children, looked up once per project and second label value: prom-client
 * would otherwise check and hash the label values on every count.
 */
class Children<Child> {
  private readonly byProject = new Map<string, Map<string, Child>>();

  constructor(private readonly metric: { labels(...values: string[]): Child }) {}

  of(project: string, ...rest: [] | [string]): Child {
    let children = this.byProject.get(project);
    if (!children) this.byProject.set(project, (children = new Map()));
    const key = rest[0] ?? "";
    let child = children.get(key);
    if (!child) children.set(key, (child = this.metric.labels(project, ...rest)));
    return child;
  }
}

/**
 * The MQTT side and the model side in one registry. Also keeps the plain totals the periodic
 * stats line prints, so every event is recorded once.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly totals = { received: 0, processed: 0, errors: 0, rejected: 0, coalesced: 0 };
  readonly recent = new RecentTurns();
  readonly promptCache = new PromptCacheStats(this.registry);
  private latencySumMs = 0;
  private latencyCount = 0;

  private readonly received = this.counterBy(
    "kind",
    "llmqtt_messages_received_total",
    "MQTT messages received, by project and kind",
  );
  private readonly published = this.counterBy(
    "kind",
    "llmqtt_messages_published_total",
    "MQTT messages published, by project and kind",
  );
  private readonly rejectedCounter = this.counterBy(
    "reason",
    "llmqtt_rejected_total",
    "Messages refused before reaching the model, by reason",
  );
  private readonly coalescedCounter = new Counter({
    name: "llmqtt_snapshots_coalesced_total",
    help: "Game states (or turns) replaced while waiting, or aborted while running, by a newer one of their session",
    registers: [this.registry],
  });
  private readonly turnSeconds = this.latencyBy(
    ["project", "outcome"],
    "llmqtt_turn_duration_seconds",
    "Time from a turn starting to its reply, by project and outcome",
  );
  private readonly firstTokenSeconds = this.latencyBy(
    ["project"],
    "llmqtt_time_to_first_token_seconds",
    "Time from a streamed turn starting to its first text, by project",
  );
  private readonly tokens = this.counterBy(
    "direction",
    "llmqtt_tokens_total",
    "Model tokens, by project and direction (prompt or completion)",
  );
  private readonly reconnects = new Counter({
    name: "llmqtt_broker_reconnects_total",
    help: "Connections to the MQTT broker after the first",
    registers: [this.registry],
  });

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: "llmqtt_process_" });
    const registers = [this.registry];
    new Gauge({
      name: "llmqtt_queue_depth",
      help: "Turns waiting for a model slot",
      registers,
      collect() {
        this.set(sources.queueDepth());
      },
    });
    new Gauge({
      name: "llmqtt_turns_in_flight",
      help: "Turns being answered by a model now",
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Gauge({
      name: "llmqtt_active_sessions",
      help: "Sessions held in the session store",
      registers,
      async collect() {
        this.set(await sources.activeSessions());
      },
    });
    new Gauge({
      name: "llmqtt_broker_connected",
      help: "1 while connected to the MQTT broker",
      registers,
      collect() {
        this.set(sources.brokerConnected() ? 1 : 0);
      },
    });
    const perServer = (name: string, help: string, value: (s: ServerStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["server"] as const,
        registers,
        collect() {
          this.reset();
          for (const server of sources.servers()) this.set({ server: server.name }, value(server));
        },
      });
    perServer("llmqtt_model_server_up", "1 while the model server is healthy", (s) => (s.healthy ? 1 : 0));
    perServer("llmqtt_model_server_slots", "Parallel generations the model server offers", (s) => s.slots);
    perServer("llmqtt_model_server_free_slots", "Slots not in use now", (s) =>
      Math.max(0, s.slots - s.inFlight),
    );
    // Monotonic per server, kept by the pool; exported as counters read at scrape time.
    new Counter({
      name: "llmqtt_model_requests_total",
      help: "Model server calls, by server and outcome",
      labelNames: ["server", "outcome"] as const,
      registers,
      collect() {
        this.reset();
        for (const server of sources.servers()) {
          this.inc({ server: server.name, outcome: "ok" }, server.served);
          this.inc({ server: server.name, outcome: "error" }, server.failed);
        }
      },
    });
  }

  /** A counter by project and one more label, counted through its cached children. */
  private counterBy(label: string, name: string, help: string) {
    return new Children(
      new Counter({ name, help, labelNames: ["project", label], registers: [this.registry] }),
    );
  }

  private latencyBy(labelNames: string[], name: string, help: string) {
    return new Children(
      new Histogram({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers: [this.registry] }),
    );
  }

  messageReceived(project: string, kind: InboundKind): void {
    this.totals.received++;
    this.received.of(project, kind).inc();
  }

  messagePublished(project: string, kind: OutboundKind): void {
    this.published.of(project, kind).inc();
  }

  rejected(project: string, reason: string): void {
    this.totals.rejected++;
    this.rejectedCounter.of(project, reason).inc();
  }

  coalesced(): void {
    this.totals.coalesced++;
    this.coalescedCounter.inc();
  }

  turnFinished(project: string, latencyMs: number, ok: boolean, usage?: TokenUsage): void {
    if (ok) this.totals.processed++;
    else this.totals.errors++;
    this.latencySumMs += latencyMs;
    this.latencyCount++;
    this.turnSeconds.of(project, ok ? "ok" : "error").observe(latencyMs / 1000);
    this.recent.add({ at: Date.now(), latencyMs, ok, project });
    if (usage) {
      this.tokens.of(project, "prompt").inc(tokenCount(usage.promptTokens));
      this.tokens.of(project, "completion").inc(tokenCount(usage.completionTokens));
      this.promptCache.record(project, usage);
    }
  }

  firstToken(project: string, latencyMs: number): void {
    this.firstTokenSeconds.of(project).observe(latencyMs / 1000);
  }

  brokerReconnected(): void {
    this.reconnects.inc();
  }

  /** Average turn latency since the previous call, so each stats line describes its interval. */
  takeAverageLatencyMs(): number {
    const average = this.latencyCount === 0 ? 0 : this.latencySumMs / this.latencyCount;
    this.latencySumMs = 0;
    this.latencyCount = 0;
    return Math.round(average);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
