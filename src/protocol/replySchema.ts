/**
 * Structured replies (PROTOCOL C7): JSON Schemas from the config file and from requests, checked
 * and compiled with Ajv, and the check of a model's reply against them.
 */

import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import type { JsonReplySchema } from "../backends/types.js";
import { isJsonObject } from "./coerce.js";
import type { FieldResult } from "./turnOptions.js";

/** `"responseSchema": "json_object"`: any JSON object, as OpenAI's response format of that name. */
export const ANY_OBJECT = "json_object";

/** A compiled schema: what the model server is sent, and the check of what it answers. */
export interface ReplySchema extends JsonReplySchema {
  /** Why `text` is not a reply the schema accepts; undefined when it is. */
  problem(text: string): string | undefined;
}

/** A schema that cannot be used: not valid JSON Schema, an unresolvable $ref, a refused keyword. */
export class SchemaError extends Error {
  override name = "SchemaError";
}

// Formats are not checked: llama.cpp and node-llama-cpp constrain only a few, and an unknown one
// must not make a schema unusable. Ajv keeps no schema it compiled (addUsedSchema, removeSchema).
const AJV_OPTIONS = { strict: false, validateFormats: false, logger: false, addUsedSchema: false } as const;
// Checks every schema against the 2020-12 meta-schema, and compiles those from the config file.
const trusted = new Ajv2020(AJV_OPTIONS);
// Compiles schemas from requests. A `pattern` would run a client's regular expression over every
// reply, and one that backtracks catastrophically would stall the gateway; so none are compiled.
const untrusted = new Ajv2020({
  ...AJV_OPTIONS,
  validateSchema: false,
  code: {
    regExp: Object.assign(
      (): never => {
        throw new SchemaError("pattern and patternProperties are not accepted in a request's schema");
      },
      { code: "refused" },
    ),
  },
});

/**
 * Compiles a JSON Schema (2020-12; a `$schema` is ignored) or `"json_object"`. `from` says whom
 * to trust: a request's schema may not use regular expressions. Throws SchemaError.
 */
export function compileReplySchema(name: string, value: unknown, from: "config" | "request"): ReplySchema {
  const schema = value === ANY_OBJECT ? { type: "object" } : withoutMetaSchema(value);
  if (!trusted.validateSchema(schema)) {
    throw new SchemaError(trusted.errorsText(trusted.errors, { dataVar: "schema" }));
  }
  const ajv = from === "config" ? trusted : untrusted;
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw err instanceof SchemaError
      ? err
      : new SchemaError(err instanceof Error ? err.message : String(err));
  } finally {
    ajv.removeSchema(schema);
  }
  return {
    name: schemaName(name),
    schema,
    strict: meetsStrictRules(schema),
    key: JSON.stringify(schema),
    problem: (text) => replyProblem(validate, text),
  };
}

function withoutMetaSchema(value: unknown): Record<string, unknown> {
  if (!isJsonObject(value)) throw new SchemaError(`must be a JSON Schema object or "${ANY_OBJECT}"`);
  const { $schema: _ignored, ...schema } = value;
  return schema;
}

function replyProblem(validate: ValidateFunction, text: string): string | undefined {
  let reply: unknown;
  try {
    reply = JSON.parse(text);
  } catch {
    return "the reply is not JSON";
  }
  if (validate(reply)) return undefined;
  return describeErrors(validate.errors);
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return trusted.errorsText(errors, { dataVar: "reply" });
}

/** OpenAI's `json_schema.name`: at most 64 of [A-Za-z0-9_-]. */
function schemaName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "reply";
}

// Keywords whose value is a schema or a list of schemas, and those whose value maps names to schemas.
const SCHEMA_KEYWORDS = ["items", "prefixItems", "anyOf", "allOf", "oneOf", "not", "additionalProperties"];
const SCHEMA_MAP_KEYWORDS = ["properties", "$defs", "definitions"];

/**
 * OpenAI enforces a schema exactly only in strict mode, and refuses strict mode for a schema in
 * which some object allows other properties or leaves one of its properties optional.
 */
function meetsStrictRules(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.every(meetsStrictRules);
  if (!isJsonObject(schema)) return true;
  if (schema.type === "object" || isJsonObject(schema.properties)) {
    const properties = isJsonObject(schema.properties) ? Object.keys(schema.properties) : [];
    const required = Array.isArray(schema.required) ? schema.required : [];
    if (schema.additionalProperties !== false) return false;
    if (!properties.every((property) => required.includes(property))) return false;
  }
  const nested = [
    ...SCHEMA_KEYWORDS.map((keyword) => schema[keyword]),
    ...SCHEMA_MAP_KEYWORDS.flatMap((keyword) => {
      const map = schema[keyword];
      return isJsonObject(map) ? Object.values(map) : [];
    }),
  ];
  return nested.every(meetsStrictRules);
}

/** Compiled schemas kept for requests; games send the same few schemas over and over. */
const MAX_CACHED = 64;

/**
 * The `"responseSchema"` of requests (C7): refused when too large or not usable, compiled once
 * per distinct schema.
 */
export class RequestSchemas {
  private readonly cache = new Map<string, ReplySchema>();

  constructor(private readonly maxBytes: number) {}

  read(value: unknown): FieldResult<ReplySchema> {
    if (value === undefined || value === null) return { ok: true, value: undefined };
    const text = typeof value === "string" ? value.trim().toLowerCase() : JSON.stringify(value);
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > this.maxBytes) {
      return { ok: false, problem: `responseSchema is ${bytes} bytes, the limit is ${this.maxBytes}` };
    }
    const cached = this.cache.get(text);
    if (cached) {
      this.cache.delete(text);
      this.cache.set(text, cached);
      return { ok: true, value: cached };
    }
    try {
      const schema = compileReplySchema("reply", typeof value === "string" ? text : value, "request");
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(text, schema);
      return { ok: true, value: schema };
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      return { ok: false, problem: `responseSchema: ${err.message}` };
    }
  }
}
