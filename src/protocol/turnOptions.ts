/** Readers for the opt-in turn fields of PROTOCOL part C: responseFormat (C1), stream (C3), images (C4). */

import { BASE64_IMAGE_KINDS, readBase64Image } from "./base64Image.js";
import { toBool } from "./coerce.js";
import type { ResponseFormat } from "./types.js";

/** Most images one turn may carry. */
export const MAX_IMAGES = 8;

/** A field's value (undefined: absent or null), or why it is unusable. */
export type FieldResult<T> = { ok: true; value: T | undefined } | { ok: false; problem: string };

const ABSENT = { ok: true, value: undefined } as const;

function isAbsent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

/** `"responseFormat"`: `"text"` or `"json"`, any case, surrounding blanks ignored. */
export function readResponseFormat(value: unknown): FieldResult<ResponseFormat> {
  if (isAbsent(value)) return ABSENT;
  const format = typeof value === "string" ? value.trim().toLowerCase() : undefined;
  if (format === "text" || format === "json") return { ok: true, value: format };
  return { ok: false, problem: 'responseFormat must be "text" or "json"' };
}

/** `"stream"`: a boolean, or a string such as `"true"`/`"false"` (see toBool); numbers are refused. */
export function readStream(value: unknown): FieldResult<boolean> {
  if (isAbsent(value)) return ABSENT;
  const flag = typeof value === "boolean" || typeof value === "string" ? toBool(value) : undefined;
  if (flag === undefined) return { ok: false, problem: "stream must be true or false" };
  return { ok: true, value: flag };
}

// `data:image/<subtype>[;param=value]...;base64,<data>`; parameters cannot swallow `;base64,`.
const DATA_IMAGE_URL =
  /^data:image\/[a-z0-9][a-z0-9.+-]*(?:;[a-z0-9.+-]+=[^;,\s]*)*;base64,[a-z0-9+/]+={0,2}$/i;
// WHATWG URL parsing forgives `https:///host`; a client sending that is mistaken, so refuse it.
const HTTP_PREFIX = /^https?:\/\/[^/\\?#]/i;
const BLANK_OR_CONTROL = /[\s\p{Cc}]/u;

/**
 * `"images"`: a list of image URLs, or of bare base64 images (passed on as data URLs); an empty
 * list is the same as none (value undefined).
 */
export function readImages(value: unknown): FieldResult<string[]> {
  if (isAbsent(value)) return ABSENT;
  if (!Array.isArray(value)) return { ok: false, problem: "images must be a list of image URL strings" };
  if (value.length > MAX_IMAGES) {
    return { ok: false, problem: `images has ${value.length} entries, the limit is ${MAX_IMAGES}` };
  }
  const images: string[] = [];
  for (const [i, item] of value.entries()) {
    if (typeof item !== "string") return { ok: false, problem: `images[${i}] must be a string` };
    const image = readImage(item, `images[${i}]`);
    if (!image.ok) return image;
    images.push(image.value);
  }
  return images.length === 0 ? ABSENT : { ok: true, value: images };
}

function readImage(text: string, name: string): { ok: true; value: string } | { ok: false; problem: string } {
  if (isImageUrl(text)) return { ok: true, value: text };
  const raw = readBase64Image(text);
  if (raw.kind === "image") return { ok: true, value: raw.dataUrl };
  const problem =
    raw.kind === "unknown"
      ? `${name} is base64 but not a ${BASE64_IMAGE_KINDS} image`
      : `${name} must be a data:image/...;base64,... URL, an http(s):// URL or a base64 ${BASE64_IMAGE_KINDS} image`;
  return { ok: false, problem };
}

function isImageUrl(text: string): boolean {
  if (DATA_IMAGE_URL.test(text)) return true;
  if (!HTTP_PREFIX.test(text) || BLANK_OR_CONTROL.test(text)) return false;
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}
