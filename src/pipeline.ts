import type { ModelBackend } from "./backends/types.js";
import type { ProjectCatalog } from "./config/projects.js";
import type { Settings } from "./config/schema.js";
import { ReplyPublisher, type Publisher } from "./conversation/replies.js";
import { TurnRunner } from "./conversation/turnRunner.js";
import { MessageDispatcher } from "./dispatcher.js";
import { RequestSchemas } from "./protocol/replySchema.js";
import type { Logger } from "./observability/logger.js";
import type { GatewayMetrics } from "./observability/metrics.js";
import type { TranscriptWriter } from "./observability/transcript.js";
import type { SessionOrder } from "./scaleout/sessionOrder.js";
import type { TurnScheduler } from "./scheduler/scheduler.js";
import type { SessionManager } from "./sessions/manager.js";
import { TokenEstimator } from "./sessions/tokens.js";

/** What the path from an inbound message to its reply is built from; the gateway owns each piece. */
export interface PipelineParts {
  settings: Settings;
  projects: ProjectCatalog;
  scheduler: TurnScheduler;
  sessions: SessionManager;
  backend: ModelBackend;
  /** Where replies go: the MQTT transport, in the gateway. */
  publisher: Publisher;
  metrics: GatewayMetrics;
  logger: Logger;
  transcript?: TranscriptWriter;
  /** Aborted when shutdown can wait no longer: model calls still running end. */
  shutdown?: AbortSignal;
  /** Per-session order across the instances of a share group. */
  order?: SessionOrder;
}

/**
 * The message path itself (validation → scheduler → turn runner → replies), without the broker
 * connection, the HTTP endpoint or the bridge: the gateway feeds it what the transport receives,
 * and the benchmark measures its cost per turn in isolation (bench/pipelineProcess.ts).
 */
export function createPipeline(parts: PipelineParts): MessageDispatcher {
  const { settings, projects, logger } = parts;
  return new MessageDispatcher({
    inbound: {
      projects: new Set(projects.names),
      jsonProjects: projects.jsonProjects,
      limits: settings.limits,
      maxTokensLimit: settings.sampling.maxTokensLimit,
      replySchemas: new RequestSchemas(settings.limits.maxSchemaBytes),
      warn: (message) => logger.warn(message),
    },
    projects,
    scheduler: parts.scheduler,
    sessions: parts.sessions,
    runner: new TurnRunner({
      settings,
      projects,
      sessions: parts.sessions,
      backend: parts.backend,
      estimator: new TokenEstimator(),
      logger,
      transcript: parts.transcript,
      shutdown: parts.shutdown,
    }),
    replies: new ReplyPublisher(parts.publisher, parts.metrics, {
      streamFlushMs: settings.streaming.flushIntervalMs,
      mqtt5: settings.mqtt.protocolVersion === 5,
    }),
    metrics: parts.metrics,
    logger,
    order: parts.order,
    maxWaiting: settings.scheduler.maxQueue,
  });
}
