import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ChatMessage } from "../../src/backends/types.js";
import { fitHistory } from "../../src/sessions/history.js";
import { TokenEstimator } from "../../src/sessions/tokens.js";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });

describe("fitHistory", () => {
  // One token per character and no overhead, so budgets are easy to read.
  const estimator = new TokenEstimator({ charsPerToken: 1, perMessageOverhead: 0 });
  const system: ChatMessage = { role: "system", content: "sys" }; // 3
  const history = [user("u1"), assistant("a1"), user("u2"), assistant("a2"), user("u3"), assistant("a3")];
  const next = user("next"); // 4
  const whole = 3 + 12 + 4;

  test("sends the whole history while it fits the budget", () => {
    const fitted = fitHistory(system, history, next, { maxTokens: whole, lowWaterTokens: 0 }, estimator);
    assert.deepEqual(fitted, { messages: [system, ...history, next], dropped: 0 });
  });

  test("over budget, drops the oldest whole pairs down to the low-water mark", () => {
    const budget = { maxTokens: whole - 1, lowWaterTokens: 3 + 4 + 4 };
    const fitted = fitHistory(system, history, next, budget, estimator);
    assert.deepEqual(fitted, { messages: [system, user("u3"), assistant("a3"), next], dropped: 4 });
  });

  test("a low-water mark at the budget drops only what must go", () => {
    const budget = { maxTokens: whole - 1, lowWaterTokens: whole - 1 };
    assert.equal(fitHistory(system, history, next, budget, estimator).dropped, 2);
  });

  test("never keeps half a pair, and always the system prompt and the new turn", () => {
    const fitted = fitHistory(system, history, next, { maxTokens: 0, lowWaterTokens: 0 }, estimator);
    assert.deepEqual(fitted, { messages: [system, next], dropped: 6 });
    assert.deepEqual(fitHistory(undefined, [], next, { maxTokens: 1, lowWaterTokens: 0 }, estimator), {
      messages: [next],
      dropped: 0,
    });
  });

  test("returns a list of its own, never the stored one", () => {
    const { messages } = fitHistory(
      system,
      history,
      next,
      { maxTokens: 1000, lowWaterTokens: 500 },
      estimator,
    );
    messages.pop();
    assert.equal(history.length, 6);
    assert.notEqual(messages, history);
  });

  test("between trims each prompt is the previous one plus the new turns; a trim comes rarely", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 })), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.double({ min: 0.1, max: 0.9, noNaN: true }),
        (turns, lowWater) => {
          const budget = { maxTokens: 400, lowWaterTokens: Math.floor(400 * lowWater) };
          let stored: ChatMessage[] = [];
          let previous: readonly ChatMessage[] | undefined;
          let trims = 0;
          for (const [question, answer] of turns) {
            const asked = user("q".repeat(question));
            const fitted = fitHistory(system, stored, asked, budget, estimator);
            assert.ok(estimator.estimate(fitted.messages) <= 400 || fitted.messages.length === 2);
            if (fitted.dropped === 0 && previous) {
              // Cache-stable: what was sent last time (bar its new turn) starts this prompt.
              assert.deepEqual(fitted.messages.slice(0, previous.length - 1), previous.slice(0, -1));
            } else if (fitted.dropped > 0) {
              trims++;
              assert.ok(
                estimator.estimate(fitted.messages) <= budget.lowWaterTokens || fitted.messages.length === 2,
              );
            }
            previous = fitted.messages;
            stored = [...stored.slice(fitted.dropped), asked, assistant("a".repeat(answer))];
          }
          // Each trim frees at least (budget - low water) less one turn's worth of room.
          const total = turns.reduce((sum, [q, a]) => sum + q + a, 0);
          const room = 400 - budget.lowWaterTokens - 120;
          if (room > 0) assert.ok(trims <= Math.ceil(total / room) + 1, `${trims} trims for ${total} tokens`);
        },
      ),
    );
  });
});
