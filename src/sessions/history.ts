import type { ChatMessage } from "../backends/types.js";
import type { TokenEstimator } from "./tokens.js";

/**
 * The messages to send for one turn: the system prompt, the newest whole user/assistant pairs of
 * `history` that fit in `budgetTokens`, and `next`. Pairs are kept whole because a reply without
 * its question (or the reverse) misleads the model. The system prompt and `next` are always sent,
 * even alone over budget: the server's context error then says so, rather than a silent cut.
 * Returns a new list of the same (read-only) message objects: nothing is copied per turn, and
 * nothing downstream can change the stored history through it.
 */
export function fitToBudget(
  system: Readonly<ChatMessage> | undefined,
  history: readonly Readonly<ChatMessage>[],
  next: Readonly<ChatMessage>,
  budgetTokens: number,
  estimator: TokenEstimator,
): Readonly<ChatMessage>[] {
  let remaining =
    budgetTokens - estimator.estimateMessage(next) - (system ? estimator.estimateMessage(system) : 0);
  let start = history.length;
  while (start >= 2) {
    const cost =
      estimator.estimateMessage(history[start - 2]!) + estimator.estimateMessage(history[start - 1]!);
    if (cost > remaining) break;
    remaining -= cost;
    start -= 2;
  }
  const messages = system ? [system] : [];
  for (let i = start; i < history.length; i++) messages.push(history[i]!);
  messages.push(next);
  return messages;
}
