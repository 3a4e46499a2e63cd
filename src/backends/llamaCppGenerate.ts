import type {
  ChatHistoryItem,
  ChatModelFunctions,
  ChatWrapper,
  LLamaChatGenerateResponseOptions,
  LlamaChatResponse,
  LlamaContextSequence,
  LlamaGrammar,
  Token,
} from "node-llama-cpp";
import { stripReasoning } from "./reasoning.js";
import { finishReason, requireFunctionCall, toChatFunctions, toChatHistory } from "./llamaCppRequest.js";
import { errorText, type LlamaRuntime } from "./llamaCppRuntime.js";
import type { TurnControl } from "./llamaCppTurn.js";
import { BackendError, type ChatRequest, type ChatResult, type TokenUsage, type ToolCall } from "./types.js";

/** One chat call, rendered and measured before it takes a slot. */
export interface TurnPlan {
  history: ChatHistoryItem[];
  functions?: ChatModelFunctions;
  wrapper: ChatWrapper;
  /** The rendered prompt, tokenized: sized against the context, and matched to cached slots. */
  tokens: Token[];
  maxTokens: number;
  /** Constrains the reply to the request's JSON schema (set by the caller; building one is async). */
  grammar?: LlamaGrammar;
}

/** Tokens kept free at the end of the context: llama.cpp needs one, generation wants one more. */
const CONTEXT_RESERVE = 2;

/**
 * Renders the prompt with the model's chat template and checks that it fits the context. A prompt
 * that does not fit is refused with `context_overflow` (sizes included) instead of letting
 * node-llama-cpp drop turns on its own, so the gateway's trimming decides what the model forgets.
 */
export function planTurn(runtime: LlamaRuntime, request: ChatRequest): TurnPlan {
  const history = toChatHistory(request.messages);
  const functions =
    request.tools?.length && request.toolChoice !== "none" ? toChatFunctions(request.tools) : undefined;
  let wrapper = request.enableThinking ? runtime.wrappers.thinking : runtime.wrappers.plain;
  if (functions && request.toolChoice === "required") wrapper = requireFunctionCall(wrapper);
  let tokens: Token[];
  try {
    const { contextText } = wrapper.generateContextState({
      chatHistory: history,
      ...(functions ? { availableFunctions: functions, documentFunctionParams: true } : {}),
    });
    tokens = contextText.tokenize(runtime.model.tokenizer);
  } catch (err) {
    throw new BackendError(
      "invalid_request",
      `the model's chat template cannot render this conversation: ${errorText(err)}`,
      { cause: err },
    );
  }
  const promptTokens = tokens.length;
  const contextTokens = runtime.contextSize;
  if (promptTokens > contextTokens - CONTEXT_RESERVE) {
    throw new BackendError(
      "context_overflow",
      `prompt is too long for the model's context (${promptTokens} tokens, the context holds ${contextTokens})`,
      { promptTokens, contextTokens },
    );
  }
  // Generation stops where the context ends instead of shifting old tokens out.
  const room = Math.max(1, contextTokens - CONTEXT_RESERVE - promptTokens);
  const maxTokens = Math.max(1, Math.min(request.maxTokens, room));
  return { history, ...(functions ? { functions } : {}), wrapper, tokens, maxTokens };
}

/** Runs one planned turn on one context sequence. */
export async function generate(
  runtime: LlamaRuntime,
  sequence: LlamaContextSequence,
  plan: TurnPlan,
  request: ChatRequest,
  turn: TurnControl,
): Promise<ChatResult> {
  const chat = new runtime.lib.LlamaChat({ contextSequence: sequence, chatWrapper: plan.wrapper });
  const meter = sequence.tokenMeter.getState();
  let response: LlamaChatResponse<ChatModelFunctions>;
  try {
    response = await chat.generateResponse(plan.history, generateOptions(plan, request, turn));
  } catch (err) {
    turn.throwIfCancelledOrTimedOut();
    if (turn.stopped === "context_full") {
      throw new BackendError("context_overflow", "the conversation filled the model's context", {
        promptTokens: plan.tokens.length,
        contextTokens: runtime.contextSize,
      });
    }
    if (err instanceof BackendError) throw err;
    throw new BackendError("server_error", `in-process generation failed: ${errorText(err)}`, { cause: err });
  } finally {
    chat.dispose();
  }
  // A stop that came after some text still means the caller no longer wants it.
  turn.throwIfCancelledOrTimedOut();
  const toolCalls: ToolCall[] = (response.functionCalls ?? []).map((call) => ({
    name: call.functionName,
    arguments: JSON.stringify(call.params ?? {}),
  }));
  const stopReason = turn.stopped === "context_full" ? "maxTokens" : response.metadata.stopReason;
  return {
    text: stripReasoning(response.response),
    toolCalls,
    finishReason: finishReason(stopReason, toolCalls.length),
    usage: measuredUsage(sequence, sequence.tokenMeter.diff(meter)),
  };
}

/**
 * What one call on `sequence` cost, read from the sequence after it: the tokens it holds that this
 * call did not decode were reused from its cache. The meter counts every token decoded (prompt and
 * generated); the last sampled token is never decoded, so the sequence ends with the prompt and
 * one generated token fewer than were sampled. The prompt counted so includes what the chat
 * template appends to start the answer, as llama-server's count does.
 */
function measuredUsage(
  sequence: LlamaContextSequence,
  used: { usedInputTokens: number; usedOutputTokens: number },
): TokenUsage {
  const held = sequence.nextTokenIndex;
  const completionTokens = used.usedOutputTokens;
  const promptTokens = Math.max(0, held - Math.max(0, completionTokens - 1));
  const decoded = used.usedInputTokens + used.usedOutputTokens;
  const cachedTokens = Math.min(promptTokens, Math.max(0, held - decoded));
  return { promptTokens, completionTokens, cachedTokens };
}

function generateOptions(
  plan: TurnPlan,
  request: ChatRequest,
  turn: TurnControl,
): LLamaChatGenerateResponseOptions<ChatModelFunctions> {
  const onDelta = request.onDelta;
  return {
    maxTokens: plan.maxTokens,
    temperature: request.temperature,
    topP: request.topP,
    signal: turn.signal,
    // Return what was generated when the context fills up; cancel and timeout are raised afterwards.
    stopOnAbortSignal: true,
    // node-llama-cpp reports only the visible response here, never thought segments.
    ...(onDelta ? { onTextChunk: (text: string) => text && onDelta(text) } : {}),
    // Thinking off: a thought segment the model opens anyway is closed at once.
    ...(request.enableThinking ? {} : { budgets: { thoughtTokens: 0 } }),
    contextShift: {
      // Never drop turns silently: planTurn left room for maxTokens, so reaching this means the
      // output outgrew its estimate (e.g. injected tool-call syntax); end the reply there.
      strategy: () => {
        turn.stop("context_full");
        return {
          chatHistory: [
            { type: "user", text: "" },
            { type: "model", response: [] },
          ],
          metadata: null,
        };
      },
    },
    ...(plan.functions
      ? { functions: plan.functions, documentFunctionParams: true, maxParallelFunctionCalls: 1 }
      : plan.grammar
        ? { grammar: plan.grammar }
        : {}),
  };
}
