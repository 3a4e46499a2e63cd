import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BackendError, type ChatRequest } from "../../src/backends/types.js";
import { ProjectCatalog } from "../../src/config/projects.js";
import { TurnRunner } from "../../src/conversation/turnRunner.js";
import type { TurnRequest } from "../../src/protocol/types.js";
import { createSessionStore } from "../../src/sessions/createStore.js";
import { SessionManager } from "../../src/sessions/manager.js";
import { TokenEstimator } from "../../src/sessions/tokens.js";
import { silent, stubBackend } from "../backends/helpers.js";
import { testSettings } from "../support/settings.js";

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
    assert.deepEqual(
      session.history.map((m) => m.content),
      ["one", "re one", "two", "re two"],
    );
  });
});
