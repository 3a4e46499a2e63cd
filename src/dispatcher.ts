import type { IPublishPacket } from "mqtt";
import { CallSignal } from "./backends/callSignal.js";
import type { ProjectCatalog } from "./config/projects.js";
import type { ReplyPublisher } from "./conversation/replies.js";
import type { TurnOutcome, TurnRunner } from "./conversation/turnRunner.js";
import type { Logger } from "./observability/logger.js";
import type { GatewayMetrics, InboundKind } from "./observability/metrics.js";
import { parseInbound, type InboundContext } from "./protocol/inbound.js";
import { RedeliveryFilter } from "./protocol/redelivery.js";
import type { InboundIntent, TurnRequest } from "./protocol/types.js";
import type { SessionOrder } from "./scaleout/sessionOrder.js";
import type { Admission, ScheduledJob, TurnScheduler } from "./scheduler/scheduler.js";
import type { SessionManager } from "./sessions/manager.js";
import { sessionKeyString } from "./sessions/record.js";

export interface DispatcherDeps {
  inbound: InboundContext;
  projects: ProjectCatalog;
  scheduler: TurnScheduler;
  sessions: SessionManager;
  runner: TurnRunner;
  replies: ReplyPublisher;
  metrics: GatewayMetrics;
  logger: Logger;
  /**
   * Several instances in a share group: a session's work waits here for its turn across all of
   * them before it enters this instance's scheduler.
   */
  order?: SessionOrder;
  /** Requests waiting for their session's turn, at most (the scheduler's queue limit). */
  maxWaiting: number;
}

type Refusal = Extract<Admission, { accepted: false }>["reason"];

type Intent<T extends InboundIntent["type"]> = Extract<InboundIntent, { type: T }>;

/**
 * One inbound MQTT message to its effect: parse and validate, then admit a turn to the
 * scheduler, apply a session change, or answer a refusal.
 */
export class MessageDispatcher {
  /** Cancels of the requests waiting for their session's turn across instances; run at shutdown. */
  private readonly waiting = new Set<() => void>();
  private readonly redeliveries = new RedeliveryFilter();
  private accepting = true;

  constructor(private readonly deps: DispatcherDeps) {}

  /**
   * Takes in one message. In a share group the returned promise settles once the request holds
   * its place in the session's order, and the transport acknowledges the message only then.
   */
  handle(topic: string, payload: Buffer, packet?: IPublishPacket): void | Promise<void> {
    const properties = packet?.properties;
    const intent = parseInbound(topic, payload, this.deps.inbound, {
      responseTopic: properties?.responseTopic,
      correlationData: properties?.correlationData,
    });
    if (!intent) return;
    if (this.redeliveries.isRepeat(topic, payload, intent, packet?.dup === true)) {
      this.deps.logger.info({ topic }, "message delivered again by the broker; already taken in, ignored");
      return;
    }
    this.deps.metrics.messageReceived(
      intent.type === "turn" ? intent.turn.project : intent.project,
      inboundKind(intent),
    );
    switch (intent.type) {
      case "turn":
        return this.admitTurn(intent.turn, expiresAt(properties?.messageExpiryInterval));
      case "cancel":
        return this.cancelTurn(intent);
      case "template":
        return this.applyTemplate(intent);
      case "clear_history":
      case "delete_session":
        return this.applyForget(intent);
      case "rejected":
        return this.refuse(intent, topic);
    }
  }

  /** Shutdown: nothing new is taken in, and requests still waiting for their turn are answered. */
  stopAccepting(): void {
    this.accepting = false;
    for (const cancel of [...this.waiting]) cancel();
  }

  private admitTurn(turn: TurnRequest, expiresAt: number | undefined): void | Promise<void> {
    const { runner, replies, metrics, logger } = this.deps;
    const ids = { project: turn.project, sessionId: turn.sessionId, requestId: turn.requestId };
    const refuse = (reason: Refusal): void => {
      metrics.rejected(turn.project, reason);
      logger.warn({ ...ids, reason }, "turn refused");
      replies.refusal(turn, reason);
    };
    const project = this.deps.projects.get(turn.project);
    const supersedes = project.supersede !== "none" && (project.hooks.supersedes?.(turn.kind) ?? true);
    return this.submit(refuse, {
      sessionKey: sessionKeyString(turn),
      kind: "turn",
      ...(supersedes ? { coalesceKey: turn.kind, supersedesRunning: project.supersede === "running" } : {}),
      ...(turn.requestId !== undefined ? { requestId: turn.requestId } : {}),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
      rateLimitPerMinute: project.rateLimitPerMinute,
      run: async (signal) => {
        const stream = replies.openStream(turn);
        const outcome = await runner.run(turn, stream?.onDelta, signal);
        stream?.close(outcome);
        // A stale turn stopped for a newer one gets no reply, as one replaced while waiting.
        if (!outcome.ok && signal.reason === "superseded") {
          metrics.coalesced();
          logger.info(ids, "turn superseded by a newer one while running; aborted");
        } else this.finish(turn, outcome);
      },
      cancel: (reason) => {
        if (reason === "superseded") return metrics.coalesced();
        logger.info({ ...ids, reason }, "turn dropped before it ran");
        replies.refusal(turn, reason === "shutdown" ? "shutting_down" : reason);
      },
    });
  }

  /** `P/cancel` (C9): the turn answers `cancelled` itself, on its own reply topic. */
  private cancelTurn(intent: Intent<"cancel">): void {
    const { project, sessionId, requestId } = intent;
    const found = this.deps.scheduler.cancel(sessionKeyString({ project, sessionId }), requestId);
    // In a share group every instance hears the cancel, and most hold nothing of the session.
    const level = found > 0 || !this.deps.order ? "info" : "debug";
    this.deps.logger[level]({ project, sessionId, requestId, found }, "cancel requested");
  }

  /** To the scheduler, directly or (in a share group) once the session's turn has come. */
  private submit(refuse: (reason: Refusal) => void, job: ScheduledJob): void | Promise<void> {
    const { order, scheduler } = this.deps;
    if (!order) {
      const admission = scheduler.submit(job);
      if (!admission.accepted) refuse(admission.reason);
      return;
    }
    if (!this.accepting) return refuse("shutting_down");
    if (order.held >= this.deps.maxWaiting) return refuse("overloaded");
    return this.submitInOrder(order, refuse, job);
  }

  private async submitInOrder(order: SessionOrder, refuse: (reason: Refusal) => void, job: ScheduledJob) {
    // A rejection here (Redis unreachable) leaves the message unacknowledged: the broker delivers it again.
    const ticket = await order.enter(job.sessionKey, job.coalesceKey);
    // Redis failing to release the session's place is logged; its hold expires by itself.
    const finish = (): Promise<void> =>
      ticket
        .finish()
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error, session: job.sessionKey }, "session order not released"),
        );
    const cancel = (): void => {
      this.waiting.delete(cancel);
      job.cancel("shutdown");
      void finish();
    };
    this.waiting.add(cancel);
    // A newer request of the session made this one stale, on this instance or another.
    const onSuperseded = (): void => {
      if (!this.waiting.delete(cancel)) return; // admitted already: runAdmitted sees to it
      job.cancel("superseded");
      void finish();
    };
    ticket.superseded.addEventListener("abort", onSuperseded, { once: true });
    const admit = (): void => {
      if (!this.waiting.delete(cancel)) return; // answered at shutdown, or superseded, already
      const admission = this.deps.scheduler.submit({
        ...job,
        run: (signal) => this.runAdmitted(job, signal, ticket.superseded).finally(finish),
        cancel: (reason) => {
          job.cancel(reason);
          void finish();
        },
      });
      if (admission.accepted) return;
      refuse(admission.reason);
      void finish();
    };
    ticket.ready
      .then(admit)
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, session: job.sessionKey }, "request not admitted"),
      );
  }

  /**
   * A job whose turn came in the cross-instance order. Superseded before it started, it is dropped
   * as a local queue drops a stale job; while it runs, only where the project says so.
   */
  private async runAdmitted(job: ScheduledJob, signal: AbortSignal, superseded: AbortSignal): Promise<void> {
    if (superseded.aborted) return job.cancel("superseded");
    if (!job.supersedesRunning) return job.run(signal);
    const runSignal = new CallSignal({ sources: [signal, superseded] });
    try {
      await job.run(runSignal.signal);
    } finally {
      runSignal.dispose();
    }
  }

  private finish(turn: TurnRequest, outcome: TurnOutcome): void {
    const { metrics, replies } = this.deps;
    metrics.turnFinished(turn.project, outcome.latencyMs, outcome.ok, outcome.usage);
    this.logTurn(turn, outcome);
    replies.answer(turn, outcome);
  }

  /** One line per turn, never the prompt or reply text (that is what debug transcripts are for). */
  private logTurn(turn: TurnRequest, outcome: TurnOutcome): void {
    const { logger } = this.deps;
    const fields = {
      project: turn.project,
      sessionId: turn.sessionId,
      requestId: turn.requestId,
      latencyMs: outcome.latencyMs,
    };
    if (outcome.ok) {
      const { usage, finishReason } = outcome;
      logger.info(
        {
          ...fields,
          outcome: "ok",
          promptTokens: usage?.promptTokens,
          completionTokens: usage?.completionTokens,
          cachedTokens: usage?.cachedTokens,
          finishReason,
        },
        "turn answered",
      );
    } else {
      logger.warn({ ...fields, outcome: outcome.error.code }, `turn failed: ${outcome.error.message}`);
    }
  }

  private applyTemplate(intent: Intent<"template">): void | Promise<void> {
    const { project, sessionId, prompt, reset } = intent;
    const { sessions, logger, replies } = this.deps;
    if (sessionId === undefined) {
      void this.logFailure(project, "project system prompt not replaced", async () => {
        const count = await sessions.setProjectPrompt(project, prompt, reset);
        logger.info({ project, sessions: count, reset }, "project system prompt replaced");
      });
      return;
    }
    return this.control(project, sessionId, async () => {
      await sessions.setSessionPrompt({ project, sessionId }, prompt, reset);
      logger.info({ project, sessionId, reset }, "session system prompt replaced");
      replies.notice(project, sessionId, "Template updated");
    });
  }

  private applyForget(intent: Intent<"clear_history" | "delete_session">): void | Promise<void> {
    const { project, sessionId, type } = intent;
    const { sessions, logger, replies } = this.deps;
    const forget = async () => {
      const count =
        type === "clear_history"
          ? await sessions.clear(project, sessionId)
          : await sessions.delete(project, sessionId);
      logger.info({ project, sessionId: sessionId ?? "all", sessions: count }, type.replace("_", " "));
      if (type === "clear_history" && sessionId !== undefined)
        replies.notice(project, sessionId, "History cleared");
    };
    // One session's clear waits behind its queued turns; "all" applies now (in-flight turns
    // of cleared sessions then skip their commit, see SessionRecord.generation).
    if (sessionId === undefined) void this.logFailure(project, `${type.replace("_", " ")} failed`, forget);
    else return this.control(project, sessionId, forget);
  }

  /**
   * Runs a project-wide change nothing waits on (no session queue, no reply topic): a failure,
   * such as the session store being away, can only be logged.
   */
  private async logFailure(project: string, failed: string, change: () => Promise<void>): Promise<void> {
    try {
      await change();
    } catch (error) {
      this.deps.logger.error({ err: error, project }, failed);
    }
  }

  /** Runs a session-local change in that session's queue, after the turns that arrived before it. */
  private control(project: string, sessionId: string, change: () => Promise<void>): void | Promise<void> {
    const { logger } = this.deps;
    const refuse = (reason: Refusal): void =>
      logger.warn({ project, sessionId, reason }, "session change refused");
    return this.submit(refuse, {
      sessionKey: sessionKeyString({ project, sessionId }),
      kind: "control",
      run: () =>
        change().catch((error: unknown) =>
          logger.error({ err: error, project, sessionId }, "session change failed"),
        ),
      cancel: () => logger.warn({ project, sessionId }, "session change dropped at shutdown"),
    });
  }

  private refuse(intent: Intent<"rejected">, topic: string): void {
    const { metrics, logger, replies } = this.deps;
    metrics.rejected(intent.project, intent.error.code);
    logger.warn(
      {
        topic,
        project: intent.project,
        sessionId: intent.sessionId,
        code: intent.error.code,
        replyTopic: intent.reply?.topic,
      },
      intent.error.message,
    );
    if (intent.reply) replies.failure(intent.reply, intent.error, intent);
  }
}

/** The time a message's MQTT 5 Message Expiry Interval (seconds, as the broker forwarded it) runs out. */
function expiresAt(intervalSec: number | undefined): number | undefined {
  return intervalSec === undefined ? undefined : Date.now() + intervalSec * 1000;
}

function inboundKind(intent: InboundIntent): InboundKind {
  switch (intent.type) {
    case "turn":
      // A game state is counted under its topic's name: `P/state` as P_state.
      return intent.turn.kind === "state" ? `${intent.turn.project}_state` : "user_input";
    case "rejected":
      return "invalid";
    default:
      return intent.type;
  }
}
