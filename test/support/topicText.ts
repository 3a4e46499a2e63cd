/**
 * A value as text inside a topic built by a fuzz test: strings as they are, other primitives by
 * String(), objects as JSON. String() throws on an object with a data key such as "toString",
 * which fast-check's object and JSON generators produce now and then.
 */
export function topicText(value: unknown): string {
  return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
}
