/**
 * Child process: llmqtt's own work per turn, with neither a broker nor a model server. The real
 * message path (createPipeline: validation, scheduler, sessions with their history, turn runner,
 * replies, metrics) is fed JSON payloads as the transport would hand them over; the model is a
 * backend that answers on the next turn of the event loop and the publisher hands the reply
 * straight back. What S1 measures around it (MQTT.js, the openai SDK, HTTP, sockets) is left out,
 * and with it most of S1's run-to-run spread, so this figure moves when llmqtt's own code does.
 * It includes this driver's own small share: building each payload, the stub's answer.
 */
import { performance } from "node:perf_hooks";
import type { ChatResult } from "../src/backends/types.js";
import { buildSettings, mergeInputs, type SettingsInput } from "../src/config/load.js";
import { ProjectCatalog } from "../src/config/projects.js";
import { createLogger } from "../src/observability/logger.js";
import { GatewayMetrics } from "../src/observability/metrics.js";
import { createPipeline } from "../src/pipeline.js";
import { TurnScheduler } from "../src/scheduler/scheduler.js";
import { createSessionStore } from "../src/sessions/createStore.js";
import { SessionManager } from "../src/sessions/manager.js";
import { stubBackend } from "../test/backends/helpers.js";
import { lastUserText } from "../test/support/fakeModelServer.js";
import { childArgs, failStart, serve } from "./ipc.js";

export interface PipelineArgs {
  /** Merged over the in-memory session store and silent logs. */
  settings?: SettingsInput;
  sessions: number;
}

export interface PipelineRound {
  turns: number;
  /** Whole replies that did not answer their own message; must be 0. */
  wrong: number;
  wallMs: number;
}

const { settings: extra = {}, sessions: sessionCount } = childArgs<PipelineArgs>();
/** A round takes well under a second; this is only a bound. */
const ROUND_LIMIT_MS = 60_000;

/** Answers as the bench's fake model server does (`reply to: <message>`), a loop turn later. */
const instantModel = stubBackend(
  "in-process stub",
  (request) =>
    new Promise<ChatResult>((resolve) =>
      setImmediate(() => {
        resolve({
          text: `reply to: ${lastUserText(request)}`,
          toolCalls: [],
          finishReason: "stop",
          usage: { promptTokens: 50, completionTokens: 5 },
        });
      }),
    ),
  sessionCount,
);

try {
  const settings = buildSettings(
    mergeInputs(
      {
        sessions: { store: "memory" },
        logging: { level: "silent" },
        server: { slots: sessionCount },
        mqtt: { clientId: "llmqtt-bench-pipeline" },
      },
      extra,
    ),
  );
  const logger = createLogger("silent", "json");
  const projects = new ProjectCatalog(settings);
  const store = createSessionStore(settings.sessions, logger);
  await store.start();
  const sessions = new SessionManager(store, { defaultPrompt: (p) => projects.get(p).systemPrompt });
  const scheduler = new TurnScheduler({
    concurrency: sessionCount,
    maxQueue: settings.scheduler.maxQueue,
    rateLimitPerMinute: settings.scheduler.rateLimitPerMinute,
  });
  const metrics = new GatewayMetrics({
    queueDepth: () => scheduler.queued,
    inFlight: () => scheduler.inFlight,
    activeSessions: () => sessions.count(),
    brokerConnected: () => true,
    servers: () => [],
  });
  /** The reply each session waits for, by reply topic. */
  const waiting = new Map<string, (payload: string) => void>();
  const dispatcher = createPipeline({
    settings,
    projects,
    scheduler,
    sessions,
    backend: instantModel,
    publisher: {
      send: (topic, payload) => {
        const deliver = waiting.get(topic);
        waiting.delete(topic);
        deliver?.(payload);
      },
    },
    metrics,
    logger,
  });
  const project = projects.names[0]!;
  const inputTopic = `${project}/user_input`;

  /** Set when a round has run out of time: replies still awaited count as wrong, and it ends. */
  let expired = false;

  /** One session's turns in sequence, as S1's clients send them: the next once the reply is in. */
  const converse = async (sessionId: string, turns: number): Promise<number> => {
    let wrong = 0;
    for (let n = 0; n < turns; n++) {
      if (expired) return wrong + turns - n;
      const message = `${sessionId} t${n}`;
      const reply = new Promise<string>((resolve) =>
        waiting.set(`${project}/assistant_response/${sessionId}`, resolve),
      );
      await dispatcher.handle(inputTopic, Buffer.from(JSON.stringify({ sessionId, message })));
      if ((await reply) !== `reply to: ${message}`) wrong++;
    }
    return wrong;
  };

  let batchesRun = 0;
  serve(
    {},
    {
      /**
       * `batches` batches one after the other; in each, every session takes `turns` turns, all
       * sessions at once, with fresh sessions each batch.
       */
      round: async ({ turns, batches }: { turns: number; batches: number }): Promise<PipelineRound> => {
        const started = performance.now();
        // A reply that never comes would otherwise hang the bench: the round ends, counting it wrong.
        expired = false;
        const watchdog = setTimeout(() => {
          expired = true;
          for (const deliver of waiting.values()) deliver("(no reply)");
          waiting.clear();
        }, ROUND_LIMIT_MS);
        let wrong = 0;
        for (let batch = 0; batch < batches; batch++) {
          const prefix = `p${batchesRun++}-`;
          const wrongs = await Promise.all(
            Array.from({ length: sessionCount }, (_, i) => converse(`${prefix}${i}`, turns)),
          );
          wrong += wrongs.reduce((a, b) => a + b, 0);
        }
        clearTimeout(watchdog);
        return { turns: batches * sessionCount * turns, wrong, wallMs: performance.now() - started };
      },
      stop: () => store.stop(),
    },
  );
} catch (error) {
  failStart(error);
}
