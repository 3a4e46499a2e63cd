/**
 * Property-based fuzz of the protocol edge (PROTOCOL A1–A6, B5, B10, B11, C1–C4): whatever arrives
 * on whatever topic, parseInbound never throws, ignores what is not ours, and turns the rest into
 * an intent that is well formed and safe to act on. fast-check prints the seed of a failing run;
 * pass it back as `{ seed }` to replay it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { parseInbound, type InboundContext, type Mqtt5Request } from "../../src/protocol/inbound.js";
import { MAX_SESSION_ID_LENGTH } from "../../src/protocol/sessionId.js";
import { MAX_IMAGES } from "../../src/protocol/turnOptions.js";
import { TINY_IMAGES } from "../support/images.js";
import type { InboundIntent, TurnRequest } from "../../src/protocol/types.js";
import { topicText } from "../support/topicText.js";
import { makeContext } from "./helpers.js";

// Show which assertion failed next to the counterexample, not only the counterexample.
fc.configureGlobal({ includeErrorInReport: true });

// "team/alpha": project names may contain `/`, which routing has to get right.
const PROJECTS = ["maze", "general", "prompt_portal", "team/alpha"];
const COMMANDS = ["template", "clear_history", "delete_session"] as const;
type Command = (typeof COMMANDS)[number];
/** MQTT's limit on a topic name, in UTF-8 bytes. */
const MAX_TOPIC_BYTES = 65_535;

function context(limits: InboundContext["limits"]): InboundContext {
  return makeContext({
    projects: new Set(PROJECTS),
    jsonProjects: new Set(["prompt_portal"]),
    limits,
    warn: () => {},
  });
}
/** Limits small enough that generated values often cross them. */
const TIGHT = context({ maxPayloadBytes: 4096, maxMessageChars: 200 });
/** The defaults' order of magnitude, so that deep nesting and 64 KiB topics get parsed at all. */
const ROOMY = context({ maxPayloadBytes: 1 << 20, maxMessageChars: 32_000 });

// ---------------------------------------------------------------------------------------------
// The oracle: what PROTOCOL says, written independently of src/protocol.

type Expected =
  | { kind: "turn"; project: string; base: string; turnKind: TurnRequest["kind"] }
  | { kind: "command"; project: string; command: Command };

/** PROTOCOL A1's input topics; undefined: not ours. */
function expectedRoute(topic: string, projects: ReadonlySet<string>): Expected | undefined {
  if (topic === "maze/state" && projects.has("maze")) {
    return { kind: "turn", project: "maze", base: "maze/hint", turnKind: "state" };
  }
  for (const project of projects) {
    if (topic === `${project}/user_input`) {
      return { kind: "turn", project, base: `${project}/assistant_response`, turnKind: "chat" };
    }
    for (const command of COMMANDS) {
      const prefix = `${project}/${command}`;
      if (topic === prefix || topic.startsWith(`${prefix}/`)) return { kind: "command", project, command };
    }
  }
  return undefined;
}

/**
 * Why a broker would refuse `topic` in a PUBLISH, or a client could not subscribe to it exactly:
 * MQTT's rules as Mosquitto (the strictest broker we test with) enforces them — it drops the
 * connection of a client that publishes such a topic — plus A1's "no trailing /".
 */
function publishTopicProblem(topic: string): string | undefined {
  if (topic === "") return "it is empty";
  if (/[+#]/.test(topic)) return "it contains a wildcard";
  if (topic.startsWith("$")) return "it starts with $";
  if (Buffer.byteLength(topic, "utf8") > MAX_TOPIC_BYTES) return "it is longer than 65,535 bytes";
  if (topic.endsWith("/")) return "it ends with /";
  return forbiddenCharacter(topic);
}

function forbiddenCharacter(text: string): string | undefined {
  if (/\p{Cc}/u.test(text)) return "it contains a control character";
  if (/[\ud800-\udfff]/u.test(text)) return "it contains a lone surrogate (invalid UTF-8)";
  if (/\p{Noncharacter_Code_Point}/u.test(text)) return "it contains a Unicode noncharacter";
  return undefined;
}

/** PROTOCOL B10: a session id is exactly one non-empty topic level. */
function sessionIdProblem(sessionId: string): string | undefined {
  if (sessionId === "") return "it is empty";
  if (/[/+#]/.test(sessionId)) return "it contains / or a wildcard";
  if (codePoints(sessionId) > MAX_SESSION_ID_LENGTH) return "it is too long";
  return forbiddenCharacter(sessionId);
}

function codePoints(text: string): number {
  return Array.from(text).length;
}

function assertSafeTopic(topic: string, what: string): void {
  const problem = publishTopicProblem(topic);
  assert.equal(problem, undefined, `${what} ${JSON.stringify(topic.slice(0, 120))}: ${problem}`);
}

function assertSafeSessionId(sessionId: string | undefined): void {
  if (sessionId === undefined) return;
  const problem = sessionIdProblem(sessionId);
  assert.equal(problem, undefined, `session id ${JSON.stringify(sessionId)}: ${problem}`);
}

/** PROTOCOL A4/B11: `<base>/<sessionId>`, or deeper below the turn's own session level. */
function assertOwnReplyTopic(topic: string, base: string, sessionId: string): void {
  assertSafeTopic(topic, "reply topic");
  const own = `${base}/${sessionId}`;
  assert.ok(topic === own || topic.startsWith(`${own}/`), `reply topic ${topic} is outside ${own}`);
}

type Turn = Extract<Expected, { kind: "turn" }>;
type Rejected = Extract<InboundIntent, { type: "rejected" }>;

function checkTurn(turn: TurnRequest, expected: Turn, ctx: InboundContext, mqtt5?: Mqtt5Request): void {
  assert.equal(turn.project, expected.project);
  assert.equal(turn.kind, expected.turnKind);
  assertSafeSessionId(turn.sessionId);
  assertOwnReplyTopic(turn.reply.topic, expected.base, turn.sessionId);
  if (turn.stream === true) {
    assert.ok(Buffer.byteLength(`${turn.reply.topic}/stream`, "utf8") <= MAX_TOPIC_BYTES, "stream topic");
  }
  if (mqtt5?.correlationData !== undefined) {
    assert.deepEqual(turn.reply.correlationData, mqtt5.correlationData, "correlation data is echoed");
  }
  const projectFormat = ctx.jsonProjects?.has(turn.project) ? "json" : "text";
  const plainFormat = turn.kind === "chat" ? "text" : "maze";
  assert.equal(turn.reply.format, (turn.responseFormat ?? projectFormat) === "json" ? "json" : plainFormat);

  assert.equal(typeof turn.content, "string");
  if (turn.kind === "chat") {
    assert.ok(codePoints(turn.content) <= ctx.limits.maxMessageChars, "message within maxMessageChars");
    assert.ok(turn.content.trim() !== "" || turn.images !== undefined, "blank message without images");
  }
  const { temperature, topP, maxTokens } = turn.sampling;
  if (temperature !== undefined)
    assert.ok(temperature >= 0 && temperature <= 2, `temperature ${temperature}`);
  if (topP !== undefined) assert.ok(topP >= 0 && topP <= 1, `topP ${topP}`);
  if (maxTokens !== undefined) {
    assert.ok(Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= ctx.maxTokensLimit, "maxTokens");
  }
  if (turn.images !== undefined) {
    assert.ok(turn.images.length >= 1 && turn.images.length <= MAX_IMAGES, "image count");
    for (const image of turn.images) assert.match(image, /^(data:image\/|https?:\/\/)/i, "an image URL");
  }
  if (turn.stream !== undefined) assert.equal(typeof turn.stream, "boolean");
  if (turn.systemPrompt !== undefined) assert.notEqual(turn.systemPrompt.trim(), "");
}

function checkRejected(intent: Rejected, expected: Expected): void {
  assert.equal(intent.project, expected.project);
  assert.ok(["invalid_request", "payload_too_large"].includes(intent.error.code), intent.error.code);
  assert.ok(intent.error.message.length > 0);
  assertSafeSessionId(intent.sessionId);
  if (expected.kind === "turn") {
    // B5: a turn topic always has a reply topic, so every refusal there is answered.
    assert.ok(intent.reply !== undefined && intent.sessionId !== undefined, "refused turn has a reply topic");
    assertOwnReplyTopic(intent.reply.topic, expected.base, intent.sessionId);
  } else if (intent.reply !== undefined) {
    // A5/A6: only maze has a topic for a command's answer.
    assert.equal(intent.project, "maze");
    assert.equal(intent.reply.topic, `maze/hint/${intent.sessionId}`);
    assertSafeTopic(intent.reply.topic, "notice topic");
  }
}

/** Parses one message and checks every property of the result; fast-check reports what fails. */
function checkParse(topic: string, payload: Uint8Array, ctx: InboundContext, mqtt5?: Mqtt5Request): void {
  const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const intent = parseInbound(topic, buffer, ctx, mqtt5);
  const expected = expectedRoute(topic, ctx.projects);
  if (expected === undefined) {
    assert.equal(intent, undefined, "a topic that is not ours is ignored");
    return;
  }
  assert.ok(intent !== undefined, "a message on our topic is never dropped silently");
  if (buffer.length > ctx.limits.maxPayloadBytes) {
    assert.equal(intent.type, "rejected", "oversized payloads are refused");
    assert.equal((intent as Rejected).error.code, "payload_too_large");
  }
  switch (intent.type) {
    case "rejected":
      return checkRejected(intent, expected);
    case "turn":
      assert.equal(expected.kind, "turn", "turns come only from turn topics");
      return checkTurn(intent.turn, expected as Turn, ctx, mqtt5);
    case "template":
      assert.deepEqual(expected, { kind: "command", project: intent.project, command: "template" });
      assert.equal(intent.prompt, intent.prompt.trim());
      assert.notEqual(intent.prompt, "");
      assert.equal(typeof intent.reset, "boolean");
      return assertSafeSessionId(intent.sessionId);
    case "clear_history":
    case "delete_session":
      assert.deepEqual(expected, { kind: "command", project: intent.project, command: intent.type });
      assert.notEqual(intent.sessionId?.toLowerCase(), "all", "`all` means every session");
      return assertSafeSessionId(intent.sessionId);
  }
}

// ---------------------------------------------------------------------------------------------
// Generators.

const utf8 = (text: string): Uint8Array => Buffer.from(text, "utf8");

/** Characters that break topics, JSON, UTF-8 or naive trimming, mixed with ordinary ones. */
const hostileChar = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  fc.constantFrom("/", "+", "#", "$", " ", "\t", "\n", "\u0000", "\u0085", "\u2028", "\ufeff"),
  fc.constantFrom("\ud800", "\udfff", "\udbff\udfff", "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\u{1fffe}"),
  fc.constantFrom("\u00e9", "\u{1f600}", "\ufffd", "\u202e"),
);
const hostileText = (maxLength: number) => fc.string({ unit: hostileChar, maxLength });

const turnTopics = [...PROJECTS.map((p) => `${p}/user_input`), "maze/state"];
const commandTopic = fc
  .tuple(fc.constantFrom(...PROJECTS), fc.constantFrom(...COMMANDS), fc.option(hostileText(30)))
  .map(([project, command, suffix]) => `${project}/${command}${suffix === null ? "" : `/${suffix}`}`);
const inputTopic = fc.oneof(fc.constantFrom(...turnTopics), commandTopic);

/** Our topics, near misses of them, and topics no broker would deliver. */
const hostileTopic = fc.oneof(
  { weight: 4, arbitrary: inputTopic },
  fc.tuple(inputTopic, hostileText(12)).map(([topic, suffix]) => topic + suffix),
  fc
    .tuple(fc.constantFrom("$", "$SYS/", "$share/group/", "/", "+/", "#/", " "), inputTopic)
    .map(([prefix, topic]) => prefix + topic),
  fc.tuple(inputTopic, fc.nat(), fc.constantFrom("+", "#", "", " ")).map(([topic, at, level]) => {
    const levels = topic.split("/");
    levels[at % levels.length] = level;
    return levels.join("/");
  }),
  fc.mixedCase(fc.constantFrom(...turnTopics)),
  hostileText(60),
);

const numericText = fc.constantFrom(
  "0",
  " 1.5 ",
  "1e3",
  "-7",
  "+2",
  ".5",
  "NaN",
  "Infinity",
  "0x10",
  "",
  "1_000",
);
const bigNumber = fc.constantFrom(2 ** 53 + 2, -(2 ** 63), 1e21, 1e308, -0, 5e-324, 2 ** 64);
/** Values of every JSON type, for fields that expect some other type. */
const anyJson = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  bigNumber,
  numericText,
  hostileText(20),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Base of every project's reply space, so that replies can be aimed at another project. */
const replyBase = fc.constantFrom(...PROJECTS.map((p) => `${p}/assistant_response`), "maze/hint");

/** Reply topics a client might send for session `sessionId`: right, subtly wrong, or hostile. */
function replyTopicFor(sessionId: unknown): fc.Arbitrary<unknown> {
  const sid = typeof sessionId === "string" ? sessionId.trim() : topicText(sessionId);
  return fc.oneof(
    fc.tuple(replyBase, hostileText(20)).map(([base, suffix]) => `${base}/${sid}/${suffix}`),
    fc.tuple(replyBase, fc.nat(3)).map(([base, slashes]) => `${base}/${sid}${"/".repeat(slashes)}`),
    replyBase.map((base) => `  ${base}/${sid}/client/req  `),
    fc.tuple(replyBase, hostileText(10)).map(([base, other]) => `${base}/${other}`),
    replyBase.map((base) => `${base}/`),
    fc.constantFrom("$SYS/broker", "#", "+/assistant_response/x", "", "   ", "general/assistant_response"),
    // Around MQTT's 65,535-byte limit, with and without room for `/stream`.
    fc
      .tuple(replyBase, fc.integer({ min: MAX_TOPIC_BYTES - 12, max: MAX_TOPIC_BYTES + 4 }))
      .map(([base, bytes]) => `${base}/${sid}/`.padEnd(bytes, "x")),
    anyJson,
  );
}

const sessionIdValue = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 12 }) },
  hostileText(20),
  fc.string({
    unit: "grapheme",
    minLength: MAX_SESSION_ID_LENGTH - 2,
    maxLength: MAX_SESSION_ID_LENGTH + 40,
  }),
  fc.constantFrom("all", "ALL", "  padded  ", "a/b", "+", "#", "\u0000", "\uffff", "\ufdd0x"),
  fc.integer(),
  bigNumber,
  anyJson,
);

const imageUrl = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "data:image/png;base64,iVBORw0KGgo=",
      "data:image/jpeg;name=a.jpg;base64,AAAA",
      "https://example.com/cat.png",
      TINY_IMAGES["image/gif"],
    ),
  },
  fc.constantFrom(
    "https:///nohost",
    "javascript:alert(1)",
    "data:text/plain;base64,AAAA",
    "data:image/png;base64,@",
    "QUJDREVGR0hJSktMTU5PUA==",
  ),
);
const mazeCell = fc.oneof(
  fc.record({ x: fc.integer(), y: fc.double() }),
  fc.tuple(fc.integer(), fc.integer()),
  anyJson,
);

/**
 * Every field a turn (A2, A3, C1–C4) or a command (A5, A6) reads, with values of the type it
 * expects — hostile text, out-of-range numbers and numeric strings included.
 */
const fieldValues = {
  message: fc.oneof({ weight: 4, arbitrary: hostileText(60) }, fc.constantFrom("", "   ", "\n\t")),
  requestId: fc.oneof(hostileText(20), fc.integer()),
  clientId: hostileText(20),
  stream: fc.oneof(fc.boolean(), fc.constantFrom("true", "no")),
  responseFormat: fc.constantFrom("json", " JSON ", "text"),
  images: fc.array(imageUrl, { maxLength: MAX_IMAGES + 1 }),
  temperature: fc.oneof(fc.double({ min: -10, max: 10, noNaN: true }), numericText),
  topP: fc.double({ min: -2, max: 2, noNaN: true }),
  maxTokens: fc.oneof(fc.integer({ min: -10, max: 1e9 }), numericText),
  systemPrompt: hostileText(30),
  prompt_template: fc.oneof(hostileText(20), fc.record({ content: hostileText(20) })),
  player_pos: mazeCell,
  exit_pos: mazeCell,
  visible_map: fc.jsonValue({ maxDepth: 3 }),
  germs: fc.array(mazeCell, { maxLength: 4 }),
  oxygenPellets: fc.array(mazeCell, { maxLength: 4 }),
  oxygenCollected: fc.integer(),
  template: fc.oneof(hostileText(40), fc.record({ content: hostileText(20), template: hostileText(5) })),
  system_prompt: hostileText(20),
  reset: fc.oneof(fc.boolean(), fc.constantFrom("yes", "off", "perhaps", 0, 2)),
  session_id: sessionIdValue,
  target: sessionIdValue,
};
const FIELD_NAMES = ["sessionId", "replyTopic", ...Object.keys(fieldValues)];

/**
 * A JSON object with a session id, a reply topic built for it and any other fields, of which up to
 * three then get a value of any JSON type — so that mostly-valid messages get far enough to meet
 * the checks of the fields that are wrong.
 */
const messageObject = sessionIdValue.chain((sessionId) =>
  fc
    .tuple(
      fc.record(
        { sessionId: fc.constant(sessionId), replyTopic: replyTopicFor(sessionId), ...fieldValues },
        { requiredKeys: [] },
      ),
      fc.array(fc.tuple(fc.constantFrom(...FIELD_NAMES), anyJson), { maxLength: 3 }),
    )
    .map(([fields, wrong]): Record<string, unknown> => ({ ...fields, ...Object.fromEntries(wrong) })),
);

/** How an object goes on the wire: intact, or damaged the way real clients and links damage it. */
const encoded = (value: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 4, arbitrary: value.map((v) => utf8(JSON.stringify(v) ?? "null")) },
    fc.tuple(value, fc.nat()).map(([v, cut]) => {
      const text = JSON.stringify(v) ?? "";
      return utf8(text.slice(0, cut % (text.length + 1)));
    }),
    fc.tuple(value, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, at, byte]) => {
      const bytes = utf8(JSON.stringify(v) ?? "");
      if (bytes.length > 0) bytes[at % bytes.length] = byte;
      return bytes;
    }),
    value.map((v) => utf8(`\ufeff${JSON.stringify(v)}`)),
    // A 64-bit numeric session id, whose digits JSON.parse alone would round.
    value.map((v) => utf8((JSON.stringify(v) ?? "").replace(/^\{/, '{"sessionId": 18446744073709551617, '))),
    value.map((v) => utf8(JSON.stringify([v]))),
  );

function nested(depth: number, shape: "array" | "object" | "mixed"): string {
  let open = "";
  let close = "";
  for (let i = 0; i < depth; i++) {
    const asArray = shape === "array" || (shape === "mixed" && i % 2 === 0);
    open += asArray ? "[" : '{"k":';
    close = (asArray ? "]" : "}") + close;
  }
  return `${open}1${close}`;
}

const FIELDS_WORTH_NESTING = [
  "message",
  "sessionId",
  "replyTopic",
  "images",
  "visible_map",
  "player_pos",
  "template",
  "target",
];

// ---------------------------------------------------------------------------------------------

describe("parseInbound under fuzzing", () => {
  test("random bytes on random and hostile topics", () => {
    fc.assert(
      fc.property(hostileTopic, fc.uint8Array({ maxLength: 600 }), (topic, payload) =>
        checkParse(topic, payload, TIGHT),
      ),
      { numRuns: 1500 },
    );
  });

  test("JSON objects with every known field valid, missing, wrongly typed or hostile", () => {
    fc.assert(
      fc.property(inputTopic, encoded(messageObject), fc.constantFrom(TIGHT, ROOMY), (topic, payload, ctx) =>
        checkParse(topic, payload, ctx),
      ),
      { numRuns: 2500 },
    );
  });

  test("MQTT 5 Response Topic and Correlation Data properties", () => {
    const mqtt5 = sessionIdValue.chain((sessionId) =>
      fc.record({
        sessionId: fc.constant(sessionId),
        responseTopic: replyTopicFor(sessionId).map((t) => (typeof t === "string" ? t : JSON.stringify(t))),
        correlationData: fc.option(
          fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)),
          { nil: undefined },
        ),
        message: fieldValues.message,
      }),
    );
    fc.assert(
      fc.property(inputTopic, mqtt5, (topic, { responseTopic, correlationData, ...body }) =>
        checkParse(topic, utf8(JSON.stringify(body)), ROOMY, { responseTopic, correlationData }),
      ),
      { numRuns: 700 },
    );
  });

  test("JSON nested up to 12,000 levels, whole or in any field", () => {
    const depth = fc.integer({ min: 900, max: 12_000 });
    const shape = fc.constantFrom("array" as const, "object" as const, "mixed" as const);
    const placement = fc.constantFrom(undefined, ...FIELDS_WORTH_NESTING);
    fc.assert(
      fc.property(inputTopic, depth, shape, placement, (topic, levels, form, field) => {
        const deep = nested(levels, form);
        const text = field === undefined ? deep : `{"sessionId":"deep","${field}":${deep},"message":"hi"}`;
        checkParse(topic, utf8(text), ROOMY);
      }),
      { numRuns: 120 },
    );
  });

  test("messages and payloads just under, at and over the limits", () => {
    const { maxPayloadBytes, maxMessageChars } = TIGHT.limits;
    // Astral characters are two UTF-16 units but one character for the limit (Python's len()).
    const unit = fc.constantFrom("a", "\u00e9", "\u{1f600}", " ");
    const message = fc
      .tuple(unit, fc.integer({ min: maxMessageChars - 2, max: maxMessageChars + 2 }))
      .map(([char, count]) => char.repeat(count));
    const asPlainText = message.map(utf8);
    const asJson = message.map((m) => utf8(JSON.stringify({ sessionId: "edge", message: m })));
    const padded = fc
      .tuple(
        fc.constantFrom(maxPayloadBytes, 4 * maxPayloadBytes),
        fc.integer({ min: -2, max: 2 }),
        fc.constantFrom("json", "text"),
      )
      .map(([limit, offset, form]) => {
        const size = limit + offset;
        const prefix = form === "json" ? '{"sessionId":"edge","message":"hi","pad":"' : "";
        const suffix = form === "json" ? '"}' : "";
        return utf8(prefix.padEnd(size - suffix.length, "p") + suffix);
      });
    fc.assert(
      fc.property(inputTopic, fc.oneof(asPlainText, asJson, padded), (topic, payload) =>
        checkParse(topic, payload, TIGHT),
      ),
      { numRuns: 500 },
    );
  });
});
