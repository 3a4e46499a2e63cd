/**
 * End-to-end fuzz (PROTOCOL B1, B5): a publisher floods the gateway's input topics with damaged,
 * mistyped, oversized and hostile payloads while well-behaved game sessions keep playing, through
 * a real broker and the fake model server over HTTP. The unit fuzz (test/protocol/fuzz.test.ts)
 * proves what the parser decides; this one proves the decisions all reach the wire: every case is
 * answered or counted, healthy sessions are unaffected, and the gateway never loses its broker.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import type { Gateway } from "../../src/gateway.js";
import { parseInbound, type InboundContext } from "../../src/protocol/inbound.js";
import { RequestSchemas } from "../../src/protocol/replySchema.js";
import type { InboundIntent } from "../../src/protocol/types.js";
import type { TestBroker } from "../support/brokers.js";
import { GameClient, type ReceivedMessage } from "../support/gameClient.js";
import { BROKERS, startRig, type Rig } from "../support/harness.js";
import { topicText } from "../support/topicText.js";
import { eventually } from "../support/wait.js";

/** Fixed, so a failure replays exactly; change it to explore other cases. */
const SEED = 20_240_611;
const FUZZ_CASES = 2000;
/** Small, so that oversized payloads are cheap to send. */
const MAX_PAYLOAD_BYTES = 2048;
const PUBLISH_BATCH = 25;
const STEADY_SESSIONS = 4;
const STEADY_TURNS = 25;
const PROJECTS = ["general", "maze", "prompt_portal"];
/** Replies only ever go below these (A1); the observer counts what arrives there. */
const REPLY_SPACES = [...PROJECTS.map((p) => `${p}/assistant_response/`), "maze/hint/"];

interface FuzzCase {
  topic: string;
  payload: Buffer;
}

// Commands go to maze and prompt_portal only: a fuzzed `general/clear_history` would wipe the
// steady sessions' history, which is the client's right but not what this test is about.
const fuzzTopic = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("general/user_input", "prompt_portal/user_input", "maze/state") },
  fc
    .tuple(
      fc.constantFrom("maze", "prompt_portal"),
      fc.constantFrom("template", "clear_history", "delete_session"),
      fc.option(fc.stringMatching(/^[a-z0-9_-]{1,10}(\/[a-z]{1,3})?$/)),
    )
    .map(([project, command, suffix]) => `${project}/${command}${suffix === null ? "" : `/${suffix}`}`),
);

/** Characters that break topics, JSON or UTF-8, mixed with ordinary text. */
const hostileText = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
    fc.constantFrom("\u0000", "\u001f", "\u0085", "\ud800", "\ufdd0", "\uffff", "+", "#", "/", "$", " "),
  ),
  maxLength: 16,
});

const wrongValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom("", "  ", "NaN", "1e400", "true"),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 2 }),
  hostileText,
);

const FIELDS = [
  "message",
  "sessionId",
  "replyTopic",
  "requestId",
  "clientId",
  "stream",
  "responseFormat",
  "images",
  "temperature",
  "topP",
  "maxTokens",
  "systemPrompt",
  "player_pos",
  "visible_map",
  "template",
  "reset",
  "target",
];

type Payload = Record<string, unknown>;

/** A turn as a well-behaved client would send it; mutations then damage it. */
const wellFormed: fc.Arbitrary<Payload> = fc.record(
  {
    sessionId: fc.stringMatching(/^[a-z0-9]{1,6}$/).map((s) => `fz-${s}`),
    message: fc.string({ minLength: 1, maxLength: 60 }),
    requestId: fc.stringMatching(/^[a-z0-9]{1,6}$/),
    stream: fc.boolean(),
    responseFormat: fc.constantFrom("text", "json"),
    template: fc.string({ maxLength: 30 }),
  },
  { requiredKeys: ["sessionId", "message"] },
);

/** A reply topic for the payload's session: right, aimed elsewhere, or not a valid topic at all. */
const replyTopicFor = fc
  .tuple(
    fc.constantFrom("general/assistant_response", "maze/hint", "prompt_portal/assistant_response"),
    hostileText,
  )
  .chain(([base, text]) =>
    fc.constantFrom(
      (sid: unknown) => `${base}/${topicText(sid)}/${text}`,
      (sid: unknown) => `${base}/${topicText(sid)}///`,
      (sid: unknown) => ` ${base}/${topicText(sid)}/client/7 `,
      () => `${base}/someone-else/x`,
      () => `$SYS/${text}`,
      () => `${base}/#`,
      () => `+/${text}`,
    ),
  );

type Mutation = (payload: Payload) => Payload;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...FIELDS), wrongValue)
    .map(([field, value]): Mutation => (p) => ({ ...p, [field]: value })),
  replyTopicFor.map((topic): Mutation => (p) => ({ ...p, replyTopic: topic(p.sessionId) })),
  hostileText.map((id): Mutation => (p) => ({ ...p, sessionId: id })),
  fc.constant(({ sessionId: _dropped, ...rest }: Payload) => rest),
);

const fuzzObject = fc
  .tuple(wellFormed, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([payload, mutations]) => mutations.reduce((p, mutate) => mutate(p), payload));

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value) ?? "null", "utf8");

const fuzzPayload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: fuzzObject.map(json) },
  fc.tuple(fuzzObject, fc.nat()).map(([p, cut]) => {
    const bytes = json(p);
    return bytes.subarray(0, cut % (bytes.length + 1));
  }),
  fc.tuple(fuzzObject, fc.nat(), fc.nat(255)).map(([p, at, byte]) => {
    const bytes = json(p);
    bytes[at % bytes.length] = byte;
    return bytes;
  }),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  fc.string({ maxLength: 80 }).map((text) => Buffer.from(text, "utf8")),
  fc.oneof(wrongValue, fc.array(fuzzObject, { maxLength: 2 })).map(json),
  // Over the limit: up to 4x it is still read for its reply topic, beyond that it is not.
  fc
    .tuple(fuzzObject, fc.integer({ min: MAX_PAYLOAD_BYTES + 1, max: 6 * MAX_PAYLOAD_BYTES }))
    .map(([p, size]) => json({ ...p, message: "x".repeat(size) })),
);

const fuzzCases: FuzzCase[] = fc.sample(fc.record({ topic: fuzzTopic, payload: fuzzPayload }), {
  seed: SEED,
  numRuns: FUZZ_CASES,
});

/**
 * Whether the protocol answers this intent on a topic (A5, A6, A8, B5): every turn, every refusal
 * that has a reply topic, and maze's notices after a single session's template or clear.
 */
function expectsAnswer(intent: InboundIntent): boolean {
  switch (intent.type) {
    case "turn":
      return true;
    case "rejected":
      return intent.reply !== undefined;
    case "template":
    case "clear_history":
      return intent.project === "maze" && intent.sessionId !== undefined;
    case "delete_session":
    case "cancel":
      return false;
  }
}

function inReplySpace(topic: string): boolean {
  return REPLY_SPACES.some((space) => topic.startsWith(space));
}

/** Stream chunks (C3) carry a `seq`; replies, errors and notices never do. */
function isStreamChunk(message: ReceivedMessage): boolean {
  try {
    const value: unknown = JSON.parse(message.text);
    return (
      typeof value === "object" && value !== null && typeof (value as { seq?: unknown }).seq === "number"
    );
  } catch {
    return false;
  }
}

async function counterTotal(gateway: Gateway, name: string): Promise<number> {
  const metric = gateway.metrics.registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name}`);
  const { values } = await metric.get();
  return values.reduce((sum, { value }) => sum + value, 0);
}

const steadyTopic = (s: number) => `general/assistant_response/steady-${s}`;
const steadyMessage = (s: number, turn: number) => `steady-${s} turn ${turn}`;

/** Publishes every case, a batch at a time so that the broker's queue stays modest. */
async function publishFuzz(publisher: GameClient): Promise<void> {
  for (let i = 0; i < fuzzCases.length; i += PUBLISH_BATCH) {
    const batch = fuzzCases.slice(i, i + PUBLISH_BATCH);
    await Promise.all(
      batch.map(({ topic, payload }) => publisher.client.publishAsync(topic, payload, { qos: 1 })),
    );
  }
}

/** One well-behaved session: all its turns sent at once, so order is the gateway's to keep (B1). */
async function playSteadySession(rig: Rig, s: number): Promise<void> {
  for (let turn = 0; turn < STEADY_TURNS; turn++) {
    await rig.game.publish("general/user_input", {
      sessionId: `steady-${s}`,
      message: steadyMessage(s, turn),
    });
  }
  const replies = await rig.game.collect(steadyTopic(s), STEADY_TURNS, 30_000);
  assert.deepEqual(
    replies.map((r) => r.text),
    Array.from({ length: STEADY_TURNS }, (_, turn) => `reply to: ${steadyMessage(s, turn)}`),
    `replies of steady-${s}, in order`,
  );
}

for (const kind of BROKERS) {
  describe(`fuzzed input through ${kind.name}`, { skip: kind.skip }, () => {
    let broker: TestBroker;
    let rig: Rig;
    let publisher: GameClient;
    let observer: GameClient;

    before(async () => {
      broker = await kind.start();
      rig = await startRig(broker, {
        projects: PROJECTS,
        limits: { maxPayloadBytes: MAX_PAYLOAD_BYTES, maxMessageChars: 1000 },
        // Admission refusals would be answered too, but they would make the steady sessions' fate
        // depend on machine speed; the queue limit has tests of its own.
        scheduler: { maxQueue: 10_000 },
      });
      observer = await GameClient.connect(broker.url, ["#"]);
      publisher = await GameClient.connect(broker.url);
    });
    after(async () => {
      await publisher.close();
      await observer.close();
      await rig.stop();
      await broker.stop();
    });

    test(`${FUZZ_CASES} fuzz cases alongside ${STEADY_SESSIONS} steady sessions`, async (t) => {
      const { gateway } = rig;
      const ctx: InboundContext = {
        projects: new Set(gateway.projects.names),
        jsonProjects: gateway.projects.jsonProjects,
        limits: gateway.settings.limits,
        maxTokensLimit: gateway.settings.sampling.maxTokensLimit,
        replySchemas: new RequestSchemas(gateway.settings.limits.maxSchemaBytes),
      };
      const intents = fuzzCases.map(({ topic, payload }) => parseInbound(topic, payload, ctx));
      assert.ok(
        intents.every((intent) => intent !== undefined),
        "every fuzz topic is one of ours",
      );
      const expectedAnswers = intents.filter((intent) => expectsAnswer(intent!)).length;
      const expectedRefusals = intents.filter((intent) => intent!.type === "rejected").length;

      await Promise.all([
        publishFuzz(publisher),
        ...Array.from({ length: STEADY_SESSIONS }, (_, s) => playSteadySession(rig, s)),
      ]);

      const steadyTopics = new Set(Array.from({ length: STEADY_SESSIONS }, (_, s) => steadyTopic(s)));
      const replySpace = () => observer.messages.filter((m) => inReplySpace(m.topic));
      const fuzzAnswers = () =>
        replySpace().filter((m) => !steadyTopics.has(m.topic) && !isStreamChunk(m)).length;
      const { totals } = gateway.metrics;
      // A superseded maze snapshot is counted instead of answered (B8).
      await eventually(
        () => fuzzAnswers() + totals.coalesced === expectedAnswers,
        30_000,
        () => `answered ${fuzzAnswers()} + coalesced ${totals.coalesced}, expected ${expectedAnswers}`,
      );
      const published = await counterTotal(gateway, "llmqtt_messages_published_total");
      await eventually(
        () => replySpace().length === published,
        10_000,
        () => `observer saw ${replySpace().length} of ${published} published replies`,
      );

      const figures = {
        seed: SEED,
        sent: FUZZ_CASES,
        answered: fuzzAnswers(),
        coalesced: totals.coalesced,
        countedWithoutAnswer: FUZZ_CASES - expectedAnswers,
        refused: totals.rejected,
        modelCalls: rig.model.requests.length,
      };
      t.diagnostic(`fuzz through ${kind.name}: ${JSON.stringify(figures)}`);

      assert.equal(
        totals.received,
        FUZZ_CASES + STEADY_SESSIONS * STEADY_TURNS,
        "every message was taken in",
      );
      assert.equal(totals.rejected, expectedRefusals, "every refusal was counted");
      assert.equal(figures.answered + figures.coalesced + figures.countedWithoutAnswer, FUZZ_CASES);
      const stray = observer.messages.filter((m) => /[+#]/.test(m.topic) || m.topic.startsWith("$"));
      assert.deepEqual(stray, [], "nothing is published on a wildcard or $ topic");
      assert.equal(
        await counterTotal(gateway, "llmqtt_broker_reconnects_total"),
        0,
        "the broker never dropped the gateway",
      );
    });

    test("the steady sessions kept exactly their turns, and the gateway still answers", async () => {
      for (let s = 0; s < STEADY_SESSIONS; s++) {
        const session = await rig.gateway.sessions.read({ project: "general", sessionId: `steady-${s}` });
        const expected = Array.from({ length: STEADY_TURNS }, (_, turn) => [
          { role: "user", content: steadyMessage(s, turn) },
          { role: "assistant", content: `reply to: ${steadyMessage(s, turn)}` },
        ]).flat();
        assert.deepEqual(
          session?.history.map(({ role, content }) => ({ role, content })),
          expected,
        );
      }
      await rig.game.publish("general/user_input", { sessionId: "after-fuzz", message: "still there?" });
      assert.equal(
        (await rig.game.next("general/assistant_response/after-fuzz")).text,
        "reply to: still there?",
      );
    });
  });
}
