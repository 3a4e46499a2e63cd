/**
 * Model-server faults under load (PROTOCOL A8, B2, B7, B9): many sessions play turns while the
 * fake model server fails in every way a real one does — 500s, connections reset before and
 * while it answers, hangs, answers just under and just over the turn deadline, context overflow —
 * chosen per turn by a fixed pattern, streamed and not. Every turn must be answered within its
 * deadline plus a generous margin, history must hold exactly the turns that succeeded, and the
 * gateway must keep serving afterwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";

import { ERROR_TEXT } from "../../src/protocol/outbound.js";
import type { ErrorCode } from "../../src/protocol/types.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import {
  contextOverflow,
  lastUserText,
  type FakeReply,
  type RecordedRequest,
} from "../support/fakeModelServer.js";
import { startRig, type Rig } from "../support/harness.js";
import { eventually } from "../support/wait.js";

const DEADLINE_MS = 2000;
/** A bound on behaviour, not a measure of speed: deadline plus a margin no machine should need. */
const ANSWER_BOUND_MS = DEADLINE_MS + 3000;
const SESSIONS = 10;
const TURNS = 10;

type Fault =
  | "none"
  | "http500"
  | "resetBeforeAnswer"
  | "resetDuringAnswer"
  | "hang"
  | "slowUnderDeadline"
  | "slowOverDeadline"
  | "contextOverflow"
  | "contextOverflowOnce";

/** One of each per session; the rotation makes every fault meet every turn position and both stream modes. */
const FAULT_CYCLE: Fault[] = [
  "none",
  "http500",
  "resetBeforeAnswer",
  "contextOverflowOnce",
  "hang",
  "none",
  "resetDuringAnswer",
  "slowUnderDeadline",
  "contextOverflow",
  "slowOverDeadline",
];

type Outcome = "ok" | ErrorCode;

/**
 * What each fault must end in. A reset that exhausts the retries marks the server unreachable
 * until the next health probe (B9), so any turn may also meet `model_unavailable` in that window.
 */
const EXPECTED: Record<Fault, Outcome> = {
  none: "ok",
  contextOverflowOnce: "ok", // B6: older turns dropped, retried once
  slowUnderDeadline: "ok",
  http500: "model_error", // B7: retried, then given up
  resetBeforeAnswer: "model_unavailable",
  resetDuringAnswer: "model_unavailable",
  hang: "timeout",
  slowOverDeadline: "timeout",
  contextOverflow: "context_overflow",
};

interface PlannedTurn {
  session: number;
  turn: number;
  fault: Fault;
  streamed: boolean;
  message: string;
}

function plan(session: number, turn: number): PlannedTurn {
  return {
    session,
    turn,
    fault: FAULT_CYCLE[(session + turn) % FAULT_CYCLE.length]!,
    streamed: turn % 2 === 1,
    message: `s${session} t${turn}`,
  };
}

const sessionId = (session: number) => `fault-${session}`;
const replyTopic = (session: number) => `general/assistant_response/${sessionId(session)}`;

/** The fake server's side: the fault is found from the turn's text, so retries meet it again. */
function faultyHandler(): (req: RecordedRequest) => FakeReply {
  const overflowed = new Set<string>();
  return (req) => {
    const [, session, turn] = /^s(\d+) t(\d+)$/.exec(lastUserText(req.body)) ?? [];
    if (session === undefined || turn === undefined) return {};
    const { fault, message } = plan(Number(session), Number(turn));
    // llama-server's own figures for a prompt this size, about 4 characters a token.
    const promptTokens = Math.ceil(JSON.stringify(req.body.messages).length / 4);
    switch (fault) {
      case "none":
        return {};
      case "http500":
        return { status: 500 };
      case "resetBeforeAnswer":
        return { destroy: true };
      case "resetDuringAnswer":
        return { breakAfterContent: 2 };
      case "hang":
        return { hang: true };
      case "slowUnderDeadline":
        return { delayMs: DEADLINE_MS / 2 };
      case "slowOverDeadline":
        // llmqtt always asks for a stream: the answer starts at once and trickles past the deadline.
        return { chunkDelayMs: DEADLINE_MS / 3 };
      case "contextOverflow":
        return contextOverflow(promptTokens, Math.floor(promptTokens / 2));
      case "contextOverflowOnce":
        // Refused once while older turns can go; a real server refuses a prompt with none again.
        if (overflowed.has(message) || req.body.messages.length <= 2) return {};
        overflowed.add(message);
        return contextOverflow(promptTokens, Math.floor(promptTokens / 2));
    }
  };
}

/** The error code of an `Error: ...` reply (A8), from its client-facing sentence. */
function outcomeOf(reply: string): Outcome | "unrecognised error" {
  if (!reply.startsWith("Error: ")) return "ok";
  const text = reply.slice("Error: ".length);
  const codes = Object.keys(ERROR_TEXT) as ErrorCode[];
  return codes.find((code) => text.startsWith(ERROR_TEXT[code].replace(/\.$/, ""))) ?? "unrecognised error";
}

interface TurnResult {
  planned: PlannedTurn;
  reply?: string;
  outcome?: Outcome | "unrecognised error";
  latencyMs?: number;
}

describe("model server faults across many sessions", () => {
  let broker: TestBroker;
  let rig: Rig;
  const results: TurnResult[] = [];

  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, {
      projects: ["general"],
      // One slot per session: the sessions run side by side, so the suite takes one session's time.
      server: { timeoutSec: DEADLINE_MS / 1000, slots: SESSIONS },
    });
  });
  after(async () => {
    await rig.stop();
    await broker.stop();
  });

  /** Plays one session's turns one after another; stops at the first turn left unanswered. */
  async function playSession(session: number): Promise<void> {
    for (let turn = 0; turn < TURNS; turn++) {
      const planned = plan(session, turn);
      const result: TurnResult = { planned };
      results.push(result);
      const started = performance.now();
      await rig.game.publish("general/user_input", {
        sessionId: sessionId(session),
        requestId: planned.message,
        message: planned.message,
        ...(planned.streamed ? { stream: true } : {}),
      });
      try {
        result.reply = (await rig.game.next(replyTopic(session), ANSWER_BOUND_MS)).text;
      } catch {
        return;
      }
      result.latencyMs = Math.round(performance.now() - started);
      result.outcome = outcomeOf(result.reply);
      if (planned.streamed) await checkStreamEnd(session, planned, result);
    }
  }

  /** C3: a streamed turn's chunks end with one `done` chunk that agrees with the reply. */
  async function checkStreamEnd(session: number, planned: PlannedTurn, result: TurnResult): Promise<void> {
    let chunk: { requestId?: string; done?: boolean; response?: string; error?: { code: string } };
    do {
      chunk = JSON.parse((await rig.game.next(`${replyTopic(session)}/stream`, ANSWER_BOUND_MS)).text);
      assert.equal(chunk.requestId, planned.message);
    } while (chunk.done !== true);
    if (result.outcome === "ok") assert.equal(chunk.response, result.reply);
    else assert.equal(chunk.error?.code, result.outcome, `stream end of ${planned.message}`);
  }

  test(`${SESSIONS} sessions x ${TURNS} turns against a failing model server`, async (t) => {
    rig.model.handler = faultyHandler();
    await Promise.all(Array.from({ length: SESSIONS }, (_, session) => playSession(session)));

    const answered = results.filter((r) => r.reply !== undefined);
    const errors = answered.filter((r) => r.outcome !== "ok");
    const byOutcome: Record<string, number> = {};
    for (const r of answered) byOutcome[r.outcome!] = (byOutcome[r.outcome!] ?? 0) + 1;
    // Turns whose own fault would not have failed them, refused while the server was marked down.
    const collateral = errors.filter(
      (r) => r.outcome === "model_unavailable" && EXPECTED[r.planned.fault] !== "model_unavailable",
    );
    const figures = {
      sent: results.length,
      answered: answered.length,
      errors: errors.length,
      lost: SESSIONS * TURNS - answered.length,
      byOutcome,
      collateralModelUnavailable: collateral.length,
      modelRequests: rig.model.requests.length,
      maxLatencyMs: Math.max(...answered.map((r) => r.latencyMs!)),
      deadlineMs: DEADLINE_MS,
    };
    t.diagnostic(`model faults: ${JSON.stringify(figures)}`);

    assert.equal(figures.lost, 0, `every turn answered within ${ANSWER_BOUND_MS} ms`);
    for (const { planned, outcome } of answered) {
      const allowed = [EXPECTED[planned.fault], "model_unavailable"];
      assert.ok(allowed.includes(outcome!), `${planned.message} (${planned.fault}) ended in ${outcome}`);
    }
  });

  /** The user and assistant messages of a session's answered turns, oldest first. */
  function successfulTurns(session: number): { role: string; content: string | undefined }[] {
    return results
      .filter((r) => r.planned.session === session && r.outcome === "ok")
      .flatMap((r) => [
        { role: "user", content: r.planned.message },
        { role: "assistant", content: r.reply },
      ]);
  }

  /** The user and assistant messages stored for a session. */
  async function storedTurns(session: number): Promise<{ role: string; content: string | undefined }[]> {
    const stored = await rig.gateway.sessions.read({ project: "general", sessionId: sessionId(session) });
    return stored?.history.map(({ role, content }) => ({ role, content })) ?? [];
  }

  test("each session's history holds its newest successful turns, in order (B2, B6)", async () => {
    for (let session = 0; session < SESSIONS; session++) {
      const stored = await storedTurns(session);
      const successful = successfulTurns(session);
      // An overflow retry drops older turns for good; what is left are the newest whole turns.
      assert.equal(stored.length % 2, 0);
      assert.deepEqual(stored, successful.slice(successful.length - stored.length), sessionId(session));
      const overflowRetried = results.some(
        (r) =>
          r.planned.session === session && r.planned.fault === "contextOverflowOnce" && r.outcome === "ok",
      );
      if (!overflowRetried) assert.equal(stored.length, successful.length, sessionId(session));
    }
  });

  test("afterwards every session is served again, with that history sent to the model", async () => {
    rig.model.handler = () => ({});
    await eventually(() => rig.gateway.backend.health().healthy, 5000);
    rig.model.resetStats();
    await Promise.all(
      Array.from({ length: SESSIONS }, async (_, session) => {
        const message = `s${session} after the storm`;
        const history = await storedTurns(session);
        await rig.game.publish("general/user_input", { sessionId: sessionId(session), message });
        assert.equal(
          (await rig.game.next(replyTopic(session), ANSWER_BOUND_MS)).text,
          `reply to: ${message}`,
        );
        const request = rig.model.requests.find((r) => lastUserText(r.body) === message);
        assert.deepEqual(request?.body.messages.slice(1), [...history, { role: "user", content: message }]);
      }),
    );
  });
});
