import type { CompletionUsage } from "openai/resources/completions";
import type { TokenUsage } from "./types.js";

/**
 * llama-server's own counts for one request, sent beside OpenAI's `usage`: on the answer, and on
 * the last chunk of a stream even without `stream_options.include_usage`. `prompt_n` prompt tokens
 * were evaluated, `cache_n` reused from the slot's cache, `predicted_n` generated.
 */
export interface ServerTimings {
  prompt_n?: unknown;
  cache_n?: unknown;
  predicted_n?: unknown;
}

/** The `timings` object of an answer or a stream chunk, when the server sent one. */
export function timingsOf(body: object): ServerTimings | undefined {
  const timings: unknown = (body as { timings?: unknown }).timings;
  return typeof timings === "object" && timings !== null ? timings : undefined;
}

/**
 * Token usage from what the server reported. The cached count is OpenAI's
 * `usage.prompt_tokens_details.cached_tokens` (llama-server, vLLM, OpenAI), else llama-server's
 * `timings.cache_n`; without a usable `usage`, `timings` alone gives all three counts. Undefined
 * when the server reported neither; counts that are not whole numbers are never passed on, as they
 * would spoil every total they are added to.
 */
export function readUsage(
  usage: CompletionUsage | null | undefined,
  timings: ServerTimings | undefined,
): TokenUsage | undefined {
  const cacheN = count(timings?.cache_n);
  const promptTokens = count(usage?.prompt_tokens);
  const completionTokens = count(usage?.completion_tokens);
  if (promptTokens !== undefined && completionTokens !== undefined) {
    const cached = count(usage?.prompt_tokens_details?.cached_tokens) ?? cacheN;
    return withCached({ promptTokens, completionTokens }, cached);
  }
  const promptN = count(timings?.prompt_n);
  const predictedN = count(timings?.predicted_n);
  if (promptN === undefined || cacheN === undefined || predictedN === undefined) return undefined;
  return { promptTokens: promptN + cacheN, completionTokens: predictedN, cachedTokens: cacheN };
}

function withCached(usage: TokenUsage, cached: number | undefined): TokenUsage {
  if (cached === undefined) return usage;
  // A server's cached count never exceeds its prompt; a confused one must not make "evaluated" negative.
  return { ...usage, cachedTokens: Math.min(cached, usage.promptTokens) };
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/**
 * The usage of several calls added up; undefined when none reported any. The cached count is the
 * sum of those that reported one, and absent when none did.
 */
export function totalUsage(calls: readonly { usage?: TokenUsage }[]): TokenUsage | undefined {
  const reported = calls.flatMap((call) => (call.usage ? [call.usage] : []));
  if (reported.length === 0) return undefined;
  if (reported.length === 1) return reported[0];
  const sum = (pick: (usage: TokenUsage) => number | undefined) =>
    reported.reduce((total, usage) => total + (pick(usage) ?? 0), 0);
  const total: TokenUsage = {
    promptTokens: sum((usage) => usage.promptTokens),
    completionTokens: sum((usage) => usage.completionTokens),
  };
  if (reported.some((usage) => usage.cachedTokens !== undefined))
    total.cachedTokens = sum((usage) => usage.cachedTokens);
  return total;
}
