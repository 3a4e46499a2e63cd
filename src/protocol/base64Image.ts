/**
 * Images sent as bare base64, without a `data:` prefix (what some clients' own APIs take). The
 * type comes from the first bytes, never from the client, so what is passed on as
 * `data:image/png;base64,...` really starts as a PNG.
 */

// 16 characters are 12 bytes: every signature below fits, and no image is smaller.
const BASE64 = /^[A-Za-z0-9+/]{16,}={0,2}$/;
const WHITESPACE = /\s+/g;

const SIGNATURES: readonly { type: string; matches: (head: Buffer) => boolean }[] = [
  {
    type: "image/png",
    matches: (head) => startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  },
  { type: "image/jpeg", matches: (head) => startsWith(head, [0xff, 0xd8, 0xff]) },
  { type: "image/gif", matches: (head) => ["GIF87a", "GIF89a"].includes(head.toString("latin1", 0, 6)) },
  {
    type: "image/webp",
    matches: (head) => head.toString("latin1", 0, 4) === "RIFF" && head.toString("latin1", 8, 12) === "WEBP",
  },
];

export const BASE64_IMAGE_KINDS = "PNG, JPEG, GIF or WebP";

export type Base64Image = { kind: "image"; dataUrl: string } | { kind: "unknown" } | { kind: "not-base64" };

/**
 * What `text` is as bare base64: an image of a known kind (as a data URL, line breaks removed and
 * padding restored), base64 of something else, or no base64 at all.
 */
export function readBase64Image(text: string): Base64Image {
  const compact = text.replace(WHITESPACE, "");
  if (!BASE64.test(compact) || compact.length % 4 === 1) return { kind: "not-base64" };
  const head = Buffer.from(compact.slice(0, 16), "base64");
  const signature = SIGNATURES.find(({ matches }) => matches(head));
  if (!signature) return { kind: "unknown" };
  const padded = compact.padEnd(Math.ceil(compact.length / 4) * 4, "=");
  return { kind: "image", dataUrl: `data:${signature.type};base64,${padded}` };
}

function startsWith(bytes: Buffer, expected: readonly number[]): boolean {
  return expected.every((byte, i) => bytes[i] === byte);
}
