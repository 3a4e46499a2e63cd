import type { ChatMessage } from "../backends/types.js";
import type { TokenEstimator } from "./tokens.js";

export interface HistoryBudget {
  /** Most tokens a prompt (system prompt + history + new turn) may have. */
  maxTokens: number;
  /** Once over `maxTokens`, older turns go until the prompt is at most this many tokens. */
  lowWaterTokens: number;
}

export interface FittedPrompt {
  messages: Readonly<ChatMessage>[];
  /** How many of the oldest history messages (whole pairs) were left out. */
  dropped: number;
}

/**
 * The messages to send for one turn: the system prompt, the history, and `next`. While that fits
 * `budget.maxTokens`, the whole history is sent, so each prompt is the previous one plus the new
 * turns and the model server reuses its cached prefix. Once it does not fit, whole oldest
 * user/assistant pairs are dropped until it fits `lowWaterTokens`: one cache miss, then room for
 * many turns before the next. The caller stores the history without the dropped pairs (the next
 * prompt must start the same way). Pairs are kept whole because a reply without its question (or
 * the reverse) misleads the model. The system prompt and `next` are always sent, even alone over
 * budget: the server's context error then says so, rather than a silent cut.
 * Returns a new list of the same (read-only) message objects: nothing is copied per turn.
 */
export function fitHistory(
  system: Readonly<ChatMessage> | undefined,
  history: readonly Readonly<ChatMessage>[],
  next: Readonly<ChatMessage>,
  budget: HistoryBudget,
  estimator: TokenEstimator,
): FittedPrompt {
  const fixed = estimator.estimateMessage(next) + (system ? estimator.estimateMessage(system) : 0);
  let total = fixed + estimator.estimate(history);
  let start = 0;
  if (total > budget.maxTokens) {
    const target = Math.min(budget.lowWaterTokens, budget.maxTokens);
    while (total > target && start + 2 <= history.length) {
      total -= estimator.estimateMessage(history[start]!) + estimator.estimateMessage(history[start + 1]!);
      start += 2;
    }
  }
  const messages = system ? [system] : [];
  for (let i = start; i < history.length; i++) messages.push(history[i]!);
  messages.push(next);
  return { messages, dropped: start };
}
