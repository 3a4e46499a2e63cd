import {
  BackendError,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ModelBackend,
  type TokenUsage,
} from "../backends/types.js";
import { CallSignal } from "../backends/callSignal.js";
import { totalUsage } from "../backends/usage.js";
import type { Settings } from "../config/schema.js";
import type { ProjectCatalog } from "../config/projects.js";
import type { Logger } from "../observability/logger.js";
import type { TranscriptWriter } from "../observability/transcript.js";
import { gatewayError } from "../protocol/outbound.js";
import type { ReplySchema } from "../protocol/replySchema.js";
import type { GatewayError, TurnRequest } from "../protocol/types.js";
import { fitHistory, type FittedPrompt, type HistoryBudget } from "../sessions/history.js";
import type { SessionManager } from "../sessions/manager.js";
import { sessionKeyString } from "../sessions/record.js";
import type { TokenEstimator } from "../sessions/tokens.js";
import { SessionStoreUnavailable, type StoredSession } from "../sessions/types.js";
import { checkedReply, InvalidReply } from "./checkedReply.js";

/** `usage` adds up every model call the turn made: a schema or overflow retry costs tokens too. */
export type TurnOutcome =
  | { ok: true; text: string; finishReason: string; usage?: TokenUsage; latencyMs: number }
  | { ok: false; error: GatewayError; usage?: TokenUsage; latencyMs: number };

/** One model call of a turn: the turn's signal and its tally are already applied. */
type ModelCall = (request: ChatRequest) => Promise<ChatResult>;

/** What the model calls of one turn share: the request (its messages refitted on retries). */
interface TurnCalls {
  request: ChatRequest;
  session: StoredSession;
  /** The user turn as the model sees it (with its images). */
  user: ChatMessage;
  call: ModelCall;
}

export interface TurnRunnerDeps {
  settings: Settings;
  projects: ProjectCatalog;
  sessions: SessionManager;
  backend: ModelBackend;
  estimator: TokenEstimator;
  logger: Logger;
  transcript?: TranscriptWriter;
  /** Aborted when shutdown can wait no longer: model calls still running end as "shutting down". */
  shutdown?: AbortSignal;
  now?: () => number;
}

/** Share of the server's context a retried prompt may use after an overflow. */
const OVERFLOW_HEADROOM = 0.9;

/**
 * One turn, from session to reply: builds the prompt from the session, calls the model,
 * commits user turn + reply together on success. Never throws; failures become outcomes.
 */
export class TurnRunner {
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: TurnRunnerDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ module: "turns" });
  }

  /**
   * `onDelta` receives the visible text as it is generated, for streamed turns. When `cancel`
   * aborts, the model call is aborted, nothing is stored, and the turn ends as `cancelled`.
   */
  async run(turn: TurnRequest, onDelta?: (text: string) => void, cancel?: AbortSignal): Promise<TurnOutcome> {
    const started = this.now();
    const { shutdown } = this.deps;
    // A cancel of this turn or the shutdown stops its model call.
    const turnSignal = new CallSignal({ sources: [cancel, shutdown] });
    const answers: ChatResult[] = [];
    const call: ModelCall = async (request) => {
      const answer = await this.deps.backend.chat(request, turnSignal.signal);
      answers.push(answer);
      return answer;
    };
    const key = { project: turn.project, sessionId: turn.sessionId };
    // What went to the model, for the transcript; after a context overflow, the shorter list.
    let request: ChatRequest | undefined;
    try {
      const health = this.deps.backend.health();
      if (!health.healthy) {
        return this.fail(turn, started, "model_unavailable", health.detail);
      }
      const { hooks, tools, replySchema } = this.deps.projects.get(turn.project);
      if (turn.responseSchema && tools.length > 0) {
        const detail = "responseSchema cannot be used on a project whose tools are on";
        return this.fail(turn, started, "invalid_request", detail);
      }
      const schema = turn.responseSchema ?? replySchema;
      const session = await this.deps.sessions.open(key, turn.systemPrompt);
      cancel?.throwIfAborted();
      const hookTurn = { kind: turn.kind, content: turn.content, state: session.projectState };
      const user: ChatMessage = { role: "user", content: hooks.modelInput?.(hookTurn) ?? turn.content };
      // Images go to the model with this turn only; history keeps the text.
      const userWithImages = turn.images?.length ? { ...user, images: turn.images } : user;
      request = this.buildRequest(turn, started, onDelta);
      if (schema) request.replySchema = schema;
      const fitted = this.fit(session, userWithImages, this.budget(request.maxTokens, health.contextTokens));
      request.messages = fitted.messages;
      const calls = { request, session, user: userWithImages, call };
      const { result, dropped } = await this.callChecked(schema, calls, fitted);
      // An answer that came in as the turn was cancelled is not stored either.
      cancel?.throwIfAborted();
      const text = hooks.replyText?.(result) ?? result.text;
      const committed = await this.deps.sessions.commitTurn(
        key,
        session.generation,
        user,
        { role: "assistant", content: text },
        hooks.nextState?.(hookTurn, text),
        dropped,
      );
      if (!committed) this.log.debug(key, "session cleared or deleted during the turn; reply not stored");
      const latencyMs = this.now() - started;
      const usage = totalUsage(answers);
      this.record(turn, request.messages, latencyMs, { reply: text, usage });
      return { ok: true, text, finishReason: result.finishReason, usage, latencyMs };
    } catch (error) {
      const gatewayError = toGatewayError(error, cancel?.aborted === true);
      if (gatewayError.code === "internal")
        this.log.error({ err: error, ...key }, "turn failed unexpectedly");
      if (gatewayError.code === "store_unavailable")
        this.log.error({ err: error, ...key }, "session store unavailable");
      this.record(turn, request?.messages ?? [], this.now() - started, { error: gatewayError.message });
      return { ok: false, error: gatewayError, usage: totalUsage(answers), latencyMs: this.now() - started };
    } finally {
      turnSignal.dispose();
    }
  }

  private buildRequest(
    turn: TurnRequest,
    started: number,
    onDelta: ((text: string) => void) | undefined,
  ): ChatRequest {
    const { settings } = this.deps;
    const project = this.deps.projects.get(turn.project);
    const hasTools = project.tools.length > 0;
    return {
      // Fitted next, to a budget that depends on maxTokens.
      messages: [],
      temperature: turn.sampling.temperature ?? project.sampling.temperature,
      topP: turn.sampling.topP ?? project.sampling.topP,
      maxTokens: turn.sampling.maxTokens ?? project.sampling.maxTokens,
      tools: hasTools ? project.tools : undefined,
      toolChoice: hasTools ? project.toolChoice : undefined,
      enableThinking: !settings.skipThinking,
      deadline: started + settings.server.timeoutSec * 1000,
      onDelta,
      // The server that last served this session still holds its prompt in cache.
      affinityKey: sessionKeyString(turn),
    };
  }

  /**
   * The prompt budget of a turn: the configured one, but never more than the model server's
   * context per slot less room for the reply, so a long session is trimmed here, cache-stably,
   * rather than refused by the server and retried.
   */
  private budget(maxTokens: number, slotContext: number | undefined): HistoryBudget {
    const { maxHistoryTokens } = this.deps.settings.sessions;
    const limit =
      slotContext === undefined ? maxHistoryTokens : Math.min(maxHistoryTokens, slotContext - maxTokens);
    return this.withLowWater(limit);
  }

  private withLowWater(maxTokens: number): HistoryBudget {
    return { maxTokens, lowWaterTokens: Math.floor(maxTokens * this.deps.settings.sessions.historyLowWater) };
  }

  private fit(session: StoredSession, user: ChatMessage, budget: HistoryBudget): FittedPrompt {
    const system: ChatMessage | undefined = session.systemPrompt
      ? { role: "system", content: session.systemPrompt }
      : undefined;
    return fitHistory(system, session.history, user, budget, this.deps.estimator);
  }

  /** PROTOCOL C7: with a reply schema, a reply that misses it is asked for once more, unstreamed. */
  private async callChecked(
    schema: ReplySchema | undefined,
    calls: TurnCalls,
    fitted: FittedPrompt,
  ): Promise<{ result: ChatResult; dropped: number }> {
    if (!schema) return this.callWithOverflowRetry(calls, fitted);
    const { request, session } = calls;
    // The prompt of the latest call: after an overflow retry, the shorter one.
    let sent = fitted;
    const result = await checkedReply(
      schema,
      async (again) => {
        if (again) request.onDelta = undefined;
        const answered = await this.callWithOverflowRetry(calls, sent);
        sent = { messages: [...request.messages], dropped: answered.dropped };
        return answered.result;
      },
      (problem) =>
        this.log.warn(
          { project: session.project, sessionId: session.sessionId, problem },
          "reply does not match the response schema; asking once more",
        ),
    );
    return { result, dropped: sent.dropped };
  }

  /**
   * PROTOCOL B6: when the server still finds the prompt too long, drop older turns and retry once.
   * `request.messages` is then the shorter list, the one the answer is for; `dropped` says how
   * many of the oldest history messages it leaves out.
   */
  private async callWithOverflowRetry(
    calls: TurnCalls,
    fitted: FittedPrompt,
  ): Promise<{ result: ChatResult; dropped: number }> {
    const { request, session, user, call } = calls;
    const { estimator } = this.deps;
    const messages = request.messages;
    try {
      return {
        result: this.observe(messages, await call(request)),
        dropped: fitted.dropped,
      };
    } catch (error) {
      if (!(error instanceof BackendError) || error.code !== "context_overflow") throw error;
      if (error.promptTokens) estimator.observe(messages, error.promptTokens);
      // The server counted these very messages: the estimate, scaled to its count, fits its context.
      const estimated = estimator.estimate(messages);
      const scale = error.promptTokens ? estimated / error.promptTokens : 1;
      const limit = error.contextTokens
        ? Math.floor(error.contextTokens * OVERFLOW_HEADROOM * scale)
        : Math.floor(estimated / 2);
      const shorter = this.fit(session, user, this.withLowWater(limit));
      // Nothing more to leave out: the same prompt would be refused again.
      if (shorter.dropped <= fitted.dropped) throw error;
      this.log.info(
        { project: session.project, sessionId: session.sessionId, dropped: shorter.dropped - fitted.dropped },
        "context exceeded; retrying with fewer turns",
      );
      request.messages = shorter.messages;
      const result = await call(request);
      return { result: this.observe(shorter.messages, result), dropped: shorter.dropped };
    }
  }

  private observe(messages: readonly Readonly<ChatMessage>[], result: ChatResult): ChatResult {
    if (result.usage?.promptTokens) this.deps.estimator.observe(messages, result.usage.promptTokens);
    return result;
  }

  private fail(turn: TurnRequest, started: number, code: GatewayError["code"], detail?: string): TurnOutcome {
    const error = gatewayError(code, detail);
    this.record(turn, [], this.now() - started, { error: error.message });
    return { ok: false, error, latencyMs: this.now() - started };
  }

  private record(
    turn: TurnRequest,
    messages: readonly Readonly<ChatMessage>[],
    latencyMs: number,
    outcome: { reply?: string; error?: string; usage?: TokenUsage },
  ): void {
    this.deps.transcript?.write({
      ts: new Date().toISOString(),
      project: turn.project,
      sessionId: turn.sessionId,
      requestId: turn.requestId,
      messages,
      latencyMs,
      ...outcome,
    });
  }
}

const BACKEND_TO_GATEWAY: Record<BackendError["code"], GatewayError["code"]> = {
  unreachable: "model_unavailable",
  timeout: "timeout",
  server_error: "model_error",
  rate_limited: "overloaded",
  context_overflow: "context_overflow",
  invalid_request: "invalid_request",
  unsupported: "invalid_request",
  // The caller's signal: the shutdown's here, as a turn's own cancel is told apart before.
  cancelled: "shutting_down",
};

function toGatewayError(error: unknown, cancelled: boolean): GatewayError {
  if (cancelled) return gatewayError("cancelled");
  if (error instanceof SessionStoreUnavailable) return gatewayError("store_unavailable");
  if (error instanceof InvalidReply) return gatewayError("invalid_reply", error.problem);
  if (!(error instanceof BackendError)) return gatewayError("internal");
  const code = BACKEND_TO_GATEWAY[error.code];
  return gatewayError(code, code === "invalid_request" ? error.message : undefined);
}
