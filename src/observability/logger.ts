import { pino, type Logger, type LevelWithSilent } from "pino";
import type pinoPretty from "pino-pretty";
import { loadOnDemand } from "../onDemand.js";

export type { Logger };

export type LogFormat = "json" | "pretty";

/**
 * Structured logs on stdout: JSON lines for machines, or a readable colour view for a terminal.
 * Secrets are redacted by path, so no caller has to strip them before logging settings.
 */
export function createLogger(
  level: LevelWithSilent,
  format: LogFormat = "json",
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { name: "llmqtt" },
    redact: {
      paths: ["*.password", "*.apiKey", "*.*.password", "*.*.apiKey", "password", "apiKey"],
      censor: "***",
    },
  };
  if (format === "pretty") {
    const pretty = loadOnDemand("pino-pretty") as typeof pinoPretty;
    const stream = pretty({
      colorize: true,
      translateTime: "HH:MM:ss.l",
      ignore: "pid,hostname,name",
      destination: 1,
    });
    return pino(options, stream);
  }
  return destination ? pino(options, destination) : pino(options);
}
