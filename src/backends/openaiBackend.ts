import OpenAI from "openai";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import type { Logger } from "pino";
import type { ServerSettings } from "../config/schema.js";
import {
  classifyError,
  requestCancelled,
  withPartialText,
  type ClassifiedError,
  type ErrorContext,
} from "./errors.js";
import { HealthMonitor } from "./health.js";
import { createHttpFetch, withCallLimits, type CallLimits, type HttpFetch } from "./httpFetch.js";
import { probeServer, unreachableDetail } from "./probe.js";
import { ReasoningFilter, stripReasoning } from "./reasoning.js";
import { DEFAULT_RETRY_POLICY, withRetries, type RetryPolicy } from "./retry.js";
import {
  BackendError,
  type BackendHealth,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ModelBackend,
  type TokenUsage,
  type ToolCall,
} from "./types.js";

export interface OpenAIBackendOptions {
  /**
   * Replaces llmqtt's keep-alive fetch (httpFetch.ts) for chat requests and probes (tests, proxies);
   * it is given the CallLimits through a signal per call.
   */
  fetch?: typeof fetch;
  /** Clock for retry decisions, epoch milliseconds; a call's own deadline runs on Date.now. */
  now?: () => number;
  retry?: Partial<RetryPolicy>;
  probeTimeoutMs?: number;
}

/** llama.cpp and vLLM read these beyond the OpenAI schema; other servers ignore them. */
interface ServerExtensions {
  chat_template_kwargs: { enable_thinking: boolean };
  cache_prompt: boolean;
}
type ExtendedChatParams = ChatCompletionCreateParamsNonStreaming & ServerExtensions;
type ExtendedStreamingParams = ChatCompletionCreateParamsStreaming & ServerExtensions;

const PROBE_TIMEOUT_MS = 5000;
// The SDK insists on a key; servers without auth ignore it.
const PLACEHOLDER_API_KEY = "no-key";
// The per-turn deadline is the only timeout; the SDK's own (10 min by default) must never cut in first.
const SDK_TIMEOUT_MS = 2 ** 31 - 1;

/** Any OpenAI-compatible chat server: llama-server, vLLM, Ollama, OpenAI. */
export class OpenAICompatibleBackend implements ModelBackend {
  readonly name: string;
  private readonly root: string;
  private readonly client: OpenAI;
  /** The connections to this server, unless a fetch was given. */
  private readonly http: HttpFetch | undefined;
  private readonly monitor: HealthMonitor;
  private readonly errorContext: ErrorContext;
  private readonly now: () => number;
  private readonly retry: RetryPolicy;

  constructor(
    private readonly settings: ServerSettings,
    private readonly logger: Logger,
    options: OpenAIBackendOptions = {},
  ) {
    this.root = serverRoot(settings.url);
    this.name = displayUrl(this.root);
    this.now = options.now ?? Date.now;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.errorContext = { server: this.name, redact: redactor(settings.apiKey) };
    let fetchImpl: typeof fetch;
    if (options.fetch) {
      fetchImpl = withCallLimits(options.fetch);
    } else {
      this.http = createHttpFetch();
      fetchImpl = this.http.fetch;
    }
    this.client = new OpenAI({
      baseURL: `${this.root}/v1`,
      apiKey: settings.apiKey || PLACEHOLDER_API_KEY,
      // Never pick up OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment for a foreign server.
      organization: null,
      project: null,
      maxRetries: 0,
      timeout: SDK_TIMEOUT_MS,
      fetch: fetchImpl,
    });
    const target = {
      root: this.root,
      server: this.name,
      apiKey: settings.apiKey,
      fetch: fetchImpl,
      timeoutMs: options.probeTimeoutMs ?? PROBE_TIMEOUT_MS,
    };
    this.monitor = new HealthMonitor((signal) => probeServer(target, signal), {
      intervalMs: settings.probeIntervalSec * 1000,
      logger,
      server: this.name,
    });
  }

  async start(): Promise<void> {
    await this.monitor.start();
  }

  async stop(): Promise<void> {
    this.monitor.stop();
    this.http?.close();
  }

  health(): Readonly<BackendHealth> {
    return this.monitor.health();
  }

  onHealthChange(listener: (health: Readonly<BackendHealth>) => void): void {
    this.monitor.onChange(listener);
  }

  chat(request: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    const answer = new AnswerWatch(request.onAnswered);
    if (request.onDelta) return this.chatStreaming(request, request.onDelta, signal, answer);
    const params = toParams(request, this.settings.model);
    const limits = callOptions(request.deadline, signal, answer);
    // Promise chains, not async functions, on this path: see withRetries in retry.ts.
    return this.withRetries(
      () => this.client.chat.completions.create(params, limits),
      request,
      signal,
      answer,
    ).then((completion) => toResult(completion, this.name));
  }

  /**
   * Streams the reply, handing each piece of visible text to `onDelta` as it arrives. Attempts
   * are retried only while nothing has been delivered; after that a failure is final and says
   * in `partialText` what the caller already has.
   */
  private async chatStreaming(
    request: ChatRequest,
    onDelta: (text: string) => void,
    signal: AbortSignal | undefined,
    answer: AnswerWatch,
  ): Promise<ChatResult> {
    const params: ExtendedStreamingParams = {
      ...toParams(request, this.settings.model),
      stream: true,
      stream_options: { include_usage: true },
    };
    let delivered = "";
    let callerError: { error: unknown } | undefined;
    const deliver = (text: string): void => {
      if (!text) return;
      delivered += text;
      try {
        onDelta(text);
      } catch (error) {
        callerError = { error };
        throw new DeliveredFailure(error, true);
      }
    };
    const limits = callOptions(request.deadline, signal, answer);
    const attempt = async (): Promise<ChatResult> => {
      const filter = new ReasoningFilter();
      const assembler = new StreamAssembler();
      try {
        const stream = await this.client.chat.completions.create(params, limits);
        for await (const chunk of stream) deliver(filter.push(assembler.add(chunk)));
        // The SDK ends the iteration quietly on an AbortError, as the caller's abort may be.
        if (signal?.aborted) throw requestCancelled();
        const result = assembler.finish(this.name);
        deliver(filter.end());
        return { ...result, text: delivered };
      } catch (err) {
        throw delivered && !(err instanceof DeliveredFailure) ? new DeliveredFailure(err) : err;
      }
    };
    try {
      return await this.withRetries(attempt, request, signal, answer);
    } catch (err) {
      if (callerError) throw callerError.error;
      if (err instanceof BackendError && delivered) throw withPartialText(err, delivered);
      throw err;
    }
  }

  /** Runs `attempt` under the retry policy and the request's deadline; keeps health up to date. */
  private withRetries<T>(
    attempt: () => Promise<T>,
    request: ChatRequest,
    signal: AbortSignal | undefined,
    answer: AnswerWatch,
  ): Promise<T> {
    return withRetries(attempt, {
      deadline: request.deadline,
      now: this.now,
      signal,
      policy: this.retry,
      exhausted: answer.hasArrived,
      classify: this.classify,
      onRetry: this.logRetry,
    }).then(this.markHealthy, this.markFailure);
  }

  // Arrow-function fields: handed on with every call without a new closure each time.
  private readonly markHealthy = <T>(result: T): T => {
    this.monitor.markHealthy();
    return result;
  };

  private readonly markFailure = (err: unknown): never => {
    if (err instanceof BackendError && err.code === "unreachable") {
      this.monitor.markUnreachable(unreachableDetail(err));
    }
    throw err;
  };

  private readonly logRetry = (error: BackendError, attempt: number, delayMs: number): void =>
    this.logger.info(
      { server: this.name, code: error.code, status: error.status, attempt, delayMs },
      `model request failed (${error.message}); retrying`,
    );

  private readonly classify = (err: unknown): ClassifiedError => {
    if (err instanceof DeliveredFailure) {
      // The caller's own failure says nothing about the server; chatStreaming rethrows it as it is.
      if (err.byCaller) return { error: new BackendError("cancelled", "onDelta failed"), final: true };
      return { ...classifyError(err.cause, this.errorContext), final: true };
    }
    return classifyError(err, this.errorContext);
  };
}

/** A failure after text went to the caller, or in the caller's own onDelta: never retried. */
class DeliveredFailure extends Error {
  constructor(
    cause: unknown,
    readonly byCaller = false,
  ) {
    super("stream failed after delivering text", { cause });
  }
}

/**
 * Passes ChatRequest.onAnswered to the fetch (CallLimits.answered) and remembers that it ran: the
 * caller may have handed the server's slot on by then, so the request is not sent again, even
 * when the answer then proves broken (cut short, unreadable).
 */
class AnswerWatch {
  private ran = false;
  readonly arrived: (() => boolean) | undefined;

  constructor(onAnswered: (() => boolean) | undefined) {
    this.arrived = onAnswered
      ? () => {
          this.ran = true;
          return onAnswered();
        }
      : undefined;
  }

  readonly hasArrived = (): boolean => this.ran;
}

/** Builds the reply from stream chunks: tool calls from their pieces, finish reason, usage. */
class StreamAssembler {
  private readonly calls: ToolCall[] = [];
  private finishReason: string | undefined;
  private usage: TokenUsage | undefined;

  /** Takes in one chunk and returns its visible-content piece (maybe with reasoning tags). */
  add(chunk: ChatCompletionChunk): string {
    if (chunk.usage) {
      this.usage = {
        promptTokens: chunk.usage.prompt_tokens,
        completionTokens: chunk.usage.completion_tokens,
      };
    }
    const choice = chunk.choices?.[0];
    if (!choice) return "";
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    for (const part of choice.delta?.tool_calls ?? []) {
      // The first piece of a call carries its id and name; later pieces only more arguments.
      const index = typeof part.index === "number" ? part.index : this.calls.length - (part.id ? 0 : 1);
      const call = (this.calls[Math.max(0, index)] ??= { name: "", arguments: "" });
      if (part.function?.name && !call.name) call.name = part.function.name;
      call.arguments += part.function?.arguments ?? "";
    }
    // reasoning_content (llama.cpp, vLLM) is another field and never read here.
    return choice.delta?.content ?? "";
  }

  /** The reply without its text; a stream that ended without a finish reason was cut short. */
  finish(server: string): Omit<ChatResult, "text"> {
    if (!this.finishReason) {
      throw new BackendError("server_error", `model server at ${server} ended the stream early`);
    }
    return {
      toolCalls: this.calls.filter((call) => call !== undefined),
      finishReason: this.finishReason,
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
}

/** A user message with images becomes content parts: its text, then one `image_url` per image. */
function toMessageParam(message: Readonly<ChatMessage>): ExtendedChatParams["messages"][number] {
  // Most messages (all of the stored history) already have the wire shape: sent as they are.
  if (message.images === undefined) return message as ExtendedChatParams["messages"][number];
  if (message.role !== "user" || message.images.length === 0)
    return { role: message.role, content: message.content };
  return {
    role: "user",
    content: [
      ...(message.content ? [{ type: "text" as const, text: message.content }] : []),
      ...message.images.map((url) => ({ type: "image_url" as const, image_url: { url } })),
    ],
  };
}

/** The SDK's options for one call: the turn's deadline, the caller's signal and answer hook, as CallLimits. */
function callOptions(
  deadline: number,
  cancel: AbortSignal | undefined,
  answer: AnswerWatch,
): OpenAI.RequestOptions {
  const limits: CallLimits = { deadline, cancel, answered: answer.arrived };
  // The SDK spreads fetchOptions into the RequestInit it hands to fetch; the fields are ours.
  return { fetchOptions: limits as NonNullable<OpenAI.RequestOptions["fetchOptions"]> };
}

function toParams(request: ChatRequest, model: string): ExtendedChatParams {
  const params: ExtendedChatParams = {
    model,
    messages: request.messages.map(toMessageParam),
    temperature: request.temperature,
    top_p: request.topP,
    max_tokens: request.maxTokens,
    chat_template_kwargs: { enable_thinking: request.enableThinking },
    // llama-server reuses the KV cache of a slot's previous prompt; conversations share long prefixes.
    cache_prompt: true,
  };
  if (request.tools?.length) {
    params.tools = request.tools.map((t) => ({
      type: "function",
      function: { name: t.name, description: t.description, parameters: t.parameters },
    }));
    if (request.toolChoice) params.tool_choice = request.toolChoice;
  }
  return params;
}

function toResult(completion: ChatCompletion, server: string): ChatResult {
  const choice = completion.choices?.[0];
  if (!choice) throw new BackendError("server_error", `model server at ${server} returned no answer`);
  const toolCalls: ToolCall[] = [];
  for (const call of choice.message.tool_calls ?? []) {
    if (call.type === "function")
      toolCalls.push({ name: call.function.name, arguments: call.function.arguments });
  }
  const usage = completion.usage
    ? { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens }
    : undefined;
  return {
    text: stripReasoning(choice.message.content ?? ""),
    toolCalls,
    finishReason: choice.finish_reason ?? "stop",
    ...(usage ? { usage } : {}),
  };
}

/** The server root without trailing slashes or /v1: the SDK wants `<root>/v1`, probes want `<root>`. */
export function serverRoot(url: string): string {
  return url.trim().replace(/\/+$/, "").replace(/\/v1$/i, "").replace(/\/+$/, "");
}

function displayUrl(root: string): string {
  try {
    const url = new URL(root);
    url.username = "";
    url.password = "";
    return url.toString().replace(/\/+$/, "");
  } catch {
    return root;
  }
}

function redactor(apiKey: string | undefined): (text: string) => string {
  if (!apiKey) return (text) => text;
  return (text) => text.split(apiKey).join("***");
}
