import { Writable } from "node:stream";
import type { LevelWithSilent } from "pino";
import { createLogger, type Logger } from "../../src/observability/logger.js";

/** A JSON logger whose every line is kept, for tests that read what was logged. */
export interface LogCapture {
  logger: Logger;
  /** Everything logged so far, as written. */
  text(): string;
  lines(): Record<string, unknown>[];
}

export function captureLogs(level: LevelWithSilent = "debug"): LogCapture {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const text = () => chunks.join("");
  return {
    logger: createLogger(level, "json", stream),
    text,
    lines: () =>
      text()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
