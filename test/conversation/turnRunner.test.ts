import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ChatRequest } from "../../src/backends/types.js";
import { ProjectCatalog } from "../../src/config/projects.js";
import { TurnRunner } from "../../src/conversation/turnRunner.js";
import type { TurnRequest } from "../../src/protocol/types.js";
import { createSessionStore } from "../../src/sessions/createStore.js";
import { SessionManager } from "../../src/sessions/manager.js";
import { TokenEstimator } from "../../src/sessions/tokens.js";
import { silent, stubBackend } from "../backends/helpers.js";
import { testSettings } from "../support/settings.js";

describe("TurnRunner", () => {
  test("with a backend that never reports its answer early, the slot is handed on before the turn is stored", async () => {
    const settings = testSettings();
    const projects = new ProjectCatalog(settings);
    const sessions = new SessionManager(createSessionStore(settings.sessions, silent), {
      defaultPrompt: (p) => projects.get(p).systemPrompt,
    });
    const events: string[] = [];
    const commit = sessions.commitTurn.bind(sessions);
    sessions.commitTurn = (...args) => {
      events.push("stored");
      return commit(...args);
    };
    // As the embedded model is: it answers, and says nothing before chat() settles.
    const backend = stubBackend("quiet", async (request: ChatRequest) => {
      events.push("answered");
      assert.ok(request.onAnswered, "the turn offers its hook to the backend");
      return { text: "hi there", toolCalls: [], finishReason: "stop" };
    });
    const runner = new TurnRunner({
      settings,
      projects,
      sessions,
      backend,
      estimator: new TokenEstimator(),
      logger: silent,
    });
    const turn: TurnRequest = {
      project: "general",
      sessionId: "s1",
      kind: "chat",
      content: "hello",
      sampling: {},
      reply: { topic: "general/assistant_response/s1", format: "text" },
    };
    const outcome = await runner.run(turn, undefined, () => {
      events.push("slot handed on");
      return false;
    });
    assert.equal(outcome.ok, true);
    assert.deepEqual(events, ["answered", "slot handed on", "stored"]);
  });
});
