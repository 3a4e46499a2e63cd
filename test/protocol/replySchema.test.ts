import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compileReplySchema, RequestSchemas, SchemaError } from "../../src/protocol/replySchema.js";
import { makeContext, parse, turnOf, type Rejected } from "./helpers.js";

const HINT = {
  type: "object",
  properties: { hint: { type: "string" }, suggestion: { type: "string" } },
  required: ["hint", "suggestion"],
  additionalProperties: false,
};

describe("reply schemas (PROTOCOL C7)", () => {
  test("a reply is checked: JSON matching the schema passes, anything else says why not", () => {
    const schema = compileReplySchema("maze_reply", HINT, "config");
    assert.equal(schema.problem('{"hint": "go", "suggestion": "up"}'), undefined);
    assert.equal(schema.problem(' \n{"hint": "go", "suggestion": "up"}\n '), undefined, "blanks around it");
    assert.equal(schema.problem('{"hint": "go", "suggestion": "up"'), "the reply is not JSON");
    assert.equal(schema.problem("Go left, then up."), "the reply is not JSON");
    assert.match(schema.problem('{"hint": 3, "suggestion": "up"}') ?? "", /reply\/hint must be string/);
    assert.match(schema.problem('{"hint": "go"}') ?? "", /must have required property 'suggestion'/);
    assert.match(schema.problem('{"hint": "go", "suggestion": "up", "x": 1}') ?? "", /additional/);
  });

  test("what the server is sent: a safe name, the schema, strict only when OpenAI's rules allow", () => {
    const schema = compileReplySchema("team/alpha reply", HINT, "config");
    assert.equal(schema.name, "team_alpha_reply");
    assert.deepEqual(schema.schema, HINT);
    assert.equal(schema.key, JSON.stringify(HINT));
    assert.equal(schema.strict, true);
    const optional = { ...HINT, required: ["hint"] };
    assert.equal(compileReplySchema("r", optional, "config").strict, false, "an optional property");
    const open = { ...HINT, additionalProperties: true };
    assert.equal(compileReplySchema("r", open, "config").strict, false, "other properties allowed");
    const nested = { ...HINT, properties: { ...HINT.properties, at: { type: "object", properties: {} } } };
    assert.equal(
      compileReplySchema("r", { ...nested, required: ["hint", "suggestion", "at"] }, "config").strict,
      false,
    );
  });

  test('"json_object" is any JSON object; a $schema is ignored', () => {
    const any = compileReplySchema("reply", "json_object", "request");
    assert.deepEqual(any.schema, { type: "object" });
    assert.equal(any.strict, false);
    assert.equal(any.problem('{"anything": [1, 2]}'), undefined);
    assert.match(any.problem("[1, 2]") ?? "", /must be object/);
    const draft7 = { $schema: "http://json-schema.org/draft-07/schema#", type: "object" };
    assert.deepEqual(compileReplySchema("reply", draft7, "request").schema, { type: "object" });
  });

  test("unusable schemas are refused with the reason", () => {
    const refused = (value: unknown, from: "config" | "request" = "request") =>
      assert.throws(() => compileReplySchema("reply", value, from), SchemaError);
    refused({ type: "strng" });
    refused({ type: "object", properties: { a: { $ref: "#/$defs/missing" } } });
    refused({ $ref: "https://example.com/schema.json" });
    refused([{ type: "object" }]);
    refused("object");
    refused({ properties: { a: { type: "string", pattern: "^(a+)+$" } } });
    refused({ patternProperties: { "^x": { type: "string" } } });
  });

  test("regular expressions are for the operator's schemas only", () => {
    const schema = compileReplySchema("r", { type: "string", pattern: "^go" }, "config");
    assert.equal(schema.problem('"go left"'), undefined);
    assert.match(schema.problem('"stay"') ?? "", /must match pattern/);
    // A property merely named "pattern" is no regular expression.
    const named = { type: "object", properties: { pattern: { type: "string" } } };
    assert.equal(compileReplySchema("r", named, "request").problem('{"pattern": "x"}'), undefined);
  });

  test("a request's schema is size-limited, compiled once and kept", () => {
    const schemas = new RequestSchemas(400);
    const first = schemas.read(HINT);
    const again = schemas.read(structuredClone(HINT));
    assert.ok(first.ok && again.ok);
    assert.equal(first.value, again.value, "the same compiled schema");
    assert.deepEqual(schemas.read(undefined), { ok: true, value: undefined });
    assert.deepEqual(schemas.read(null), { ok: true, value: undefined });
    const any = schemas.read(" JSON_Object ");
    assert.ok(any.ok && any.value?.key === '{"type":"object"}');
    const big = { type: "object", description: "x".repeat(400) };
    assert.deepEqual(schemas.read(big), {
      ok: false,
      problem: `responseSchema is ${JSON.stringify(big).length} bytes, the limit is 400`,
    });
    const bad = schemas.read(42);
    assert.ok(!bad.ok && /must be a JSON Schema object or "json_object"/.test(bad.problem));
  });
});

describe("responseSchema at the protocol edge", () => {
  test("a turn carries its compiled schema", () => {
    const turn = turnOf(
      parse("general/user_input", { sessionId: "s", message: "hi", responseSchema: HINT }, makeContext()),
    );
    assert.deepEqual(turn.responseSchema?.schema, HINT);
    assert.equal(turnOf(parse("general/user_input", { message: "hi" })).responseSchema, undefined);
  });

  test("a bad schema is an invalid request, answered where the turn would have been", () => {
    const intent = parse("maze/state", { sessionId: "s", responseSchema: { type: "strng" } }) as Rejected;
    assert.equal(intent.type, "rejected");
    assert.equal(intent.error.code, "invalid_request");
    assert.match(intent.error.message, /^Invalid request: responseSchema: schema\/type must be/);
    assert.equal(intent.reply?.topic, "maze/hint/s");
  });
});
