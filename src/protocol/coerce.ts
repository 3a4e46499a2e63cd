/**
 * Lenient readers for values that arrive in client JSON or model tool-call arguments. The
 * original gateway ran them through Python's float()/int()/str(), so numeric strings must keep
 * working; anything else becomes `undefined` instead of an exception.
 */

import { pyNumber } from "./pyjson.js";

export type JsonObject = Record<string, unknown>;
export type IntPair = [number, number];

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// What Python's float() accepts as decimal text (surrounding whitespace included).
const NUMERIC_TEXT = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** A finite number from a number or a numeric string; booleans and the rest are not numbers. */
export function toFiniteNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && NUMERIC_TEXT.test(value)) {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** Python's int(): truncation toward zero. */
export function toInt(value: unknown): number | undefined {
  const n = toFiniteNumber(value);
  return n === undefined ? undefined : Math.trunc(n) + 0; // `+ 0`: no -0 in output
}

/** A grid cell from `{x, y}` or `[x, y, ...]`; undefined unless both coordinates are numbers. */
export function toIntPair(value: unknown): IntPair | undefined {
  let x: unknown;
  let y: unknown;
  if (Array.isArray(value)) {
    if (value.length < 2) return undefined;
    [x, y] = value;
  } else if (isJsonObject(value)) {
    ({ x, y } = value);
  } else {
    return undefined;
  }
  const ix = toInt(x);
  const iy = toInt(y);
  return ix === undefined || iy === undefined ? undefined : [ix, iy];
}

/** The valid cells of a list, skipping the rest; not a list means no cells. */
export function toIntPairs(value: unknown): IntPair[] {
  if (!Array.isArray(value)) return [];
  const out: IntPair[] = [];
  for (const item of value) {
    const pair = toIntPair(item);
    if (pair) out.push(pair);
  }
  return out;
}

const TRUE_TEXT = new Set(["true", "1", "yes", "on"]);
const FALSE_TEXT = new Set(["false", "0", "no", "off"]);

/** A boolean from a boolean, a number, or true/false-like text; undefined when unclear. */
export function toBool(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isNaN(value) ? undefined : value !== 0;
  if (typeof value === "string") {
    const text = value.trim().toLowerCase();
    if (TRUE_TEXT.has(text)) return true;
    if (FALSE_TEXT.has(text)) return false;
  }
  return undefined;
}

/**
 * Python's str() of a JSON scalar, for ids clients may send as numbers or booleans.
 * Objects, arrays, null and undefined give undefined.
 */
export function scalarText(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
      return pyNumber(value);
    case "boolean":
      return value ? "True" : "False";
    default:
      return undefined;
  }
}

/** Correlation ids are echoed to clients, so they are kept exactly (numbers as Python's str()). */
export function idField(value: unknown): string | undefined {
  return typeof value === "string" || typeof value === "number" ? scalarText(value) : undefined;
}
