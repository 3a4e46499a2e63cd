import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { requestCancelled } from "../../src/backends/errors.js";
import {
  BackendError,
  type ChatMessage,
  type ChatRequest,
  type ModelBackend,
} from "../../src/backends/types.js";
import type { SettingsInput } from "../../src/config/load.js";
import { ProjectCatalog } from "../../src/config/projects.js";
import { TurnRunner } from "../../src/conversation/turnRunner.js";
import type { TurnRequest } from "../../src/protocol/types.js";
import { createSessionStore } from "../../src/sessions/createStore.js";
import { SessionManager } from "../../src/sessions/manager.js";
import { TokenEstimator } from "../../src/sessions/tokens.js";
import { silent, stubBackend } from "../backends/helpers.js";
import { testSettings } from "../support/settings.js";

/** A runner over sessions in memory; one estimated token per character, no per-message overhead. */
function runnerWith(backend: ModelBackend, input: SettingsInput = {}, shutdown?: AbortSignal) {
  const settings = testSettings(input);
  const projects = new ProjectCatalog(settings);
  const sessions = new SessionManager(createSessionStore(settings.sessions, silent), {
    defaultPrompt: () => "sys",
  });
  const estimator = new TokenEstimator({ charsPerToken: 1, perMessageOverhead: 0 });
  const runner = new TurnRunner({
    settings,
    projects,
    sessions,
    backend,
    estimator,
    logger: silent,
    shutdown,
  });
  return { runner, sessions };
}

const turnOf = (content: string, maxTokens?: number): TurnRequest => ({
  project: "general",
  sessionId: "s1",
  kind: "chat",
  content,
  sampling: maxTokens === undefined ? {} : { maxTokens },
  reply: { topic: "general/assistant_response/s1", format: "text" },
});

/** A backend that answers every turn with `answer`, keeping what it was sent; `contextTokens` per slot. */
function recordingBackend(answer: string, contextTokens?: number) {
  const sent: (readonly Readonly<ChatMessage>[])[] = [];
  const backend: ModelBackend = {
    ...stubBackend("recording", async (request: ChatRequest) => {
      sent.push(request.messages);
      return { text: answer, toolCalls: [], finishReason: "stop" };
    }),
    health: () => ({ healthy: true, slots: 1, ...(contextTokens ? { contextTokens } : {}) }),
  };
  return { backend, sent };
}

const contents = (messages: readonly Readonly<ChatMessage>[]) => messages.map((m) => m.content);

describe("TurnRunner", () => {
  test("a context overflow drops older turns and retries once; user turn and reply are stored together", async () => {
    const settings = testSettings();
    const projects = new ProjectCatalog(settings);
    const sessions = new SessionManager(createSessionStore(settings.sessions, silent), {
      defaultPrompt: (p) => projects.get(p).systemPrompt,
    });
    const sent: number[] = [];
    const backend = stubBackend("small context", async (request: ChatRequest) => {
      sent.push(request.messages.length);
      if (request.messages.length > 3) {
        throw new BackendError("context_overflow", "too long", { promptTokens: 400, contextTokens: 60 });
      }
      return { text: `re ${request.messages.at(-1)!.content}`, toolCalls: [], finishReason: "stop" };
    });
    const runner = new TurnRunner({
      settings,
      projects,
      sessions,
      backend,
      estimator: new TokenEstimator(),
      logger: silent,
    });
    const turn = (content: string): TurnRequest => ({
      project: "general",
      sessionId: "s1",
      kind: "chat",
      content,
      sampling: {},
      reply: { topic: "general/assistant_response/s1", format: "text" },
    });
    assert.equal((await runner.run(turn("one"))).ok, true);
    const outcome = await runner.run(turn("two"));
    assert.deepEqual(outcome.ok && outcome.text, "re two");
    assert.deepEqual(sent, [2, 4, 2], "system + one, then system + one + reply + two, retried shorter");
    const session = await sessions.open({ project: "general", sessionId: "s1" });
    // The turns the retry left out stay out: the next prompt starts as this one did.
    assert.deepEqual(
      session.history.map((m) => m.content),
      ["two", "re two"],
    );
  });

  test("over budget, the oldest pairs go down to the low-water mark, in the prompt and in the store", async () => {
    const { backend, sent } = recordingBackend("a".repeat(20));
    const { runner, sessions } = runnerWith(backend, {
      sessions: { maxHistoryTokens: 100, historyLowWater: 0.5 },
    });
    for (let i = 0; i < 8; i++) assert.equal((await runner.run(turnOf(`${i}`.repeat(10)))).ok, true);
    // 3 (system) + 30 per turn: the fourth turn would be 3 + 90 + 10 > 100, so it drops to <= 50.
    const sizes = sent.map((messages) => messages.length);
    assert.deepEqual(sizes, [2, 4, 6, 4, 6, 4, 6, 4]);
    for (let i = 1; i < sent.length; i++) {
      const [previous, current] = [sent[i - 1]!, sent[i]!];
      if (current.length > previous.length) {
        // Between trims the prompt is the previous one plus the new turns.
        assert.deepEqual(contents(current.slice(0, previous.length)), contents(previous));
      }
    }
    const stored = await sessions.read({ project: "general", sessionId: "s1" });
    assert.deepEqual(
      contents(stored!.history).filter((_, i) => i % 2 === 0),
      ["6".repeat(10), "7".repeat(10)],
    );
  });

  test("the server's context per slot, less the reply's tokens, caps the budget", async () => {
    const { backend, sent } = recordingBackend("a".repeat(20), 130);
    const { runner } = runnerWith(backend, { sessions: { maxHistoryTokens: 4096, historyLowWater: 1 } });
    for (let i = 0; i < 4; i++) await runner.run(turnOf(`${i}`.repeat(10), 50));
    // Budget 130 - 50 = 80: system 3 + new turn 10 + at most two earlier turns of 30.
    assert.deepEqual(
      sent.map((messages) => messages.length),
      [2, 4, 6, 6],
    );
  });

  test("a prompt the server refuses is retried once without older turns, and those stay dropped", async () => {
    const attempts: number[] = [];
    const backend = stubBackend("small", async (request: ChatRequest) => {
      attempts.push(request.messages.length);
      // The server counts three tokens per character: anything beyond two messages is too long.
      const tokens = 3 * request.messages.reduce((sum, m) => sum + m.content.length, 0);
      if (tokens > 60)
        throw new BackendError("context_overflow", "too long", { promptTokens: tokens, contextTokens: 60 });
      return { text: "ok", toolCalls: [], finishReason: "stop" };
    });
    const { runner, sessions } = runnerWith(backend);
    const key = { project: "general", sessionId: "s1" };
    const { generation } = await sessions.open(key, "sys");
    await sessions.commitTurn(
      key,
      generation,
      { role: "user", content: "q".repeat(10) },
      { role: "assistant", content: "a".repeat(10) },
    );
    const outcome = await runner.run(turnOf("x".repeat(10)));
    assert.equal(outcome.ok, true);
    assert.deepEqual(attempts, [4, 2]);
    const stored = await sessions.read(key);
    assert.deepEqual(contents(stored!.history), ["x".repeat(10), "ok"]);

    attempts.length = 0;
    const refused = await runner.run(turnOf("y".repeat(30)));
    assert.equal(refused.ok, false);
    assert.deepEqual(attempts, [4, 2], "retried once, then nothing left to drop");
  });

  describe("a cancelled turn", () => {
    const history = async (sessions: SessionManager) =>
      (await sessions.open({ project: "general", sessionId: "s1" })).history;

    /** A model call that ends only when its signal aborts, as the real backends' do. */
    const untilAborted = stubBackend(
      "until aborted",
      (_request, signal) =>
        new Promise((_resolve, reject) =>
          signal?.addEventListener("abort", () => reject(requestCancelled())),
        ),
    );

    test("aborts the model call, stores nothing and ends as cancelled", async () => {
      const { runner, sessions } = runnerWith(untilAborted);
      const cancel = new AbortController();
      const running = runner.run(turnOf("hello"), undefined, cancel.signal);
      setImmediate(() => cancel.abort("cancelled"));
      const outcome = await running;
      assert.equal(!outcome.ok && outcome.error.code, "cancelled");
      assert.deepEqual(await history(sessions), []);
    });

    test("an answer that arrives as the turn is cancelled is not stored", async () => {
      const cancel = new AbortController();
      const late = stubBackend("late", async () => {
        cancel.abort("superseded");
        return { text: "too late", toolCalls: [], finishReason: "stop" };
      });
      const { runner, sessions } = runnerWith(late);
      const outcome = await runner.run(turnOf("hello"), undefined, cancel.signal);
      assert.equal(!outcome.ok && outcome.error.code, "cancelled");
      assert.deepEqual(await history(sessions), []);
    });

    test("the shutdown's abort still ends a turn as shutting_down", async () => {
      const shutdown = new AbortController();
      const { runner } = runnerWith(untilAborted, {}, shutdown.signal);
      const running = runner.run(turnOf("hello"), undefined, new AbortController().signal);
      setImmediate(() => shutdown.abort());
      const outcome = await running;
      assert.equal(!outcome.ok && outcome.error.code, "shutting_down");
    });
  });
});
