import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import type { Logger } from "pino";
import type { ServerSettings } from "../config/schema.js";
import {
  classifyError,
  missedDeadline,
  requestCancelled,
  withPartialText,
  type ClassifiedError,
  type ErrorContext,
} from "./errors.js";
import { CallSignal } from "./callSignal.js";
import { HealthMonitor } from "./health.js";
import { createModelClient, type ModelClient } from "./modelClient.js";
import { probeServer, unreachableDetail } from "./probe.js";
import { ReasoningFilter } from "./reasoning.js";
import { DEFAULT_RETRY_POLICY, withRetries, type RetryPolicy } from "./retry.js";
import {
  BackendError,
  type BackendHealth,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ModelBackend,
  type ToolCall,
} from "./types.js";
import { readUsage, timingsOf, type ServerTimings } from "./usage.js";

export interface OpenAIBackendOptions {
  /** Replaces undici's fetch for chat requests and probes (tests, proxies). */
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

/** Any OpenAI-compatible chat server: llama-server, vLLM, Ollama, OpenAI. */
export class OpenAICompatibleBackend implements ModelBackend {
  readonly name: string;
  private readonly client: ModelClient;
  private readonly monitor: HealthMonitor;
  private readonly errorContext: ErrorContext;
  private readonly now: () => number;
  private readonly retry: RetryPolicy;

  constructor(
    private readonly settings: ServerSettings,
    private readonly logger: Logger,
    options: OpenAIBackendOptions = {},
  ) {
    const root = serverRoot(settings.url);
    this.name = displayUrl(root);
    this.now = options.now ?? Date.now;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.errorContext = { server: this.name, redact: redactor(settings.apiKey) };
    this.client = createModelClient({
      root,
      apiKey: settings.apiKey,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    const target = {
      root,
      server: this.name,
      apiKey: settings.apiKey,
      fetch: this.client.fetch,
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
    await this.client.close();
  }

  health(): Readonly<BackendHealth> {
    return this.monitor.health();
  }

  onHealthChange(listener: (health: Readonly<BackendHealth>) => void): void {
    this.monitor.onChange(listener);
  }

  /**
   * Always asks for a stream, even when no one reads the pieces: llama-server stops generating
   * when a streamed request's connection closes, but runs a non-streamed one to its end, so only
   * a stream gives the slot of a cancelled or timed-out turn back at once. Visible text goes to
   * `request.onDelta` as it arrives, when given; attempts are retried only while nothing has
   * been delivered there, after that a failure is final and says in `partialText` what the
   * caller already has.
   */
  async chat(request: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    const call = new CallSignal({ deadline: request.deadline, sources: [signal] });
    const params: ExtendedStreamingParams = {
      ...toParams(request, this.settings.model),
      stream: true,
      stream_options: { include_usage: true },
    };
    const onDelta = request.onDelta;
    let delivered = "";
    let callerError: { error: unknown } | undefined;
    const deliver = (text: string): void => {
      if (!text || !onDelta) return;
      delivered += text;
      try {
        onDelta(text);
      } catch (error) {
        callerError = { error };
        throw new DeliveredFailure(error, true);
      }
    };
    const attempt = async (): Promise<ChatResult> => {
      const filter = new ReasoningFilter();
      const assembler = new StreamAssembler();
      let text = "";
      const take = (piece: string): void => {
        text += piece;
        deliver(piece);
      };
      try {
        const stream = await this.client.openai.chat.completions.create(params, { signal: call.signal });
        for await (const chunk of stream) take(filter.push(assembler.add(chunk)));
        // The SDK ends the iteration quietly when the call's signal aborts.
        const stopped = stopError(call);
        if (stopped) throw stopped;
        const result = assembler.finish(this.name);
        take(filter.end());
        return { ...result, text };
      } catch (err) {
        throw delivered && !(err instanceof DeliveredFailure) ? new DeliveredFailure(err) : err;
      }
    };
    try {
      return await this.withRetries(attempt, request, call, signal);
    } catch (err) {
      if (callerError) throw callerError.error;
      if (err instanceof BackendError && delivered) throw withPartialText(err, delivered);
      throw err;
    } finally {
      call.dispose();
    }
  }

  /** Runs `attempt` under the retry policy and the request's deadline; keeps health up to date. */
  private async withRetries<T>(
    attempt: () => Promise<T>,
    request: ChatRequest,
    call: CallSignal,
    caller: AbortSignal | undefined,
  ): Promise<T> {
    try {
      const result = await withRetries(attempt, {
        deadline: request.deadline,
        now: this.now,
        signal: caller,
        policy: request.singleAttempt ? { ...this.retry, maxAttempts: 1 } : this.retry,
        classify: (err) => this.classify(err, call),
        onRetry: (error, n, delayMs) => this.logRetry(error, n, delayMs),
      });
      this.monitor.markHealthy();
      return result;
    } catch (err) {
      if (err instanceof BackendError && err.code === "unreachable") {
        this.monitor.markUnreachable(unreachableDetail(err));
      }
      throw err;
    }
  }

  private logRetry(error: BackendError, attempt: number, delayMs: number): void {
    this.logger.info(
      { server: this.name, code: error.code, status: error.status, attempt, delayMs },
      `model request failed (${error.message}); retrying`,
    );
  }

  private classify(err: unknown, call: CallSignal): ClassifiedError {
    // An aborted call fails in whatever way the SDK or fetch saw it; what stopped it is what counts.
    const stopped = stopError(call);
    if (stopped) return { error: stopped, final: true };
    if (err instanceof DeliveredFailure) {
      // The caller's own failure says nothing about the server; chatStreaming rethrows it as it is.
      if (err.byCaller) return { error: new BackendError("cancelled", "onDelta failed"), final: true };
      return { ...classifyError(err.cause, this.errorContext), final: true };
    }
    return classifyError(err, this.errorContext);
  }
}

/** Why a call was stopped, as the caller should hear it; undefined while it may go on. */
function stopError(call: CallSignal): BackendError | undefined {
  if (call.cancelled) return requestCancelled();
  if (call.expired) return missedDeadline();
  return undefined;
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

/** Builds the reply from stream chunks: tool calls from their pieces, finish reason, usage. */
class StreamAssembler {
  private readonly calls: ToolCall[] = [];
  private finishReason: string | undefined;
  private usage: ChatCompletionChunk["usage"];
  private timings: ServerTimings | undefined;

  /** Takes in one chunk and returns its visible-content piece (maybe with reasoning tags). */
  add(chunk: ChatCompletionChunk): string {
    if (chunk.usage) this.usage = chunk.usage;
    this.timings = timingsOf(chunk) ?? this.timings;
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
    const usage = readUsage(this.usage, this.timings);
    return {
      toolCalls: this.calls.filter((call) => call !== undefined),
      finishReason: this.finishReason,
      ...(usage ? { usage } : {}),
    };
  }
}

/** A user message with images becomes content parts: its text, then one `image_url` per image. */
function toMessageParam(message: Readonly<ChatMessage>): ExtendedChatParams["messages"][number] {
  if (message.role !== "user" || !message.images?.length)
    return { role: message.role, content: message.content };
  return {
    role: "user",
    content: [
      ...(message.content ? [{ type: "text" as const, text: message.content }] : []),
      ...message.images.map((url) => ({ type: "image_url" as const, image_url: { url } })),
    ],
  };
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
  if (request.replySchema) {
    const { name, schema, strict } = request.replySchema;
    params.response_format = { type: "json_schema", json_schema: { name, schema, strict } };
  }
  return params;
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
