import { readFileSync } from "node:fs";
import { extname } from "node:path";
import type * as Yaml from "yaml";
import { loadOnDemand } from "../onDemand.js";
import { redactUrl } from "../observability/redact.js";
import { ConfigError, type SettingsInput } from "./load.js";

/** Keys whose values are secrets: never printed, and loadable from `<key>File`. */
const SECRET_KEYS = new Set(["password", "apiKey", "keyPassphrase", "token"]);

/** Reads a YAML or JSON settings file (JSON is YAML, but `.json` gets JSON's stricter errors). */
export function readConfigFile(path: string): SettingsInput {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value =
      extname(path).toLowerCase() === ".json"
        ? JSON.parse(text)
        : (loadOnDemand("yaml") as typeof Yaml).parse(text);
  } catch (error) {
    throw new ConfigError(
      `config file ${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(error as Error).message}`,
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`config file ${path} must hold an object of settings`);
  }
  return value as SettingsInput;
}

/**
 * Replaces every `passwordFile` / `apiKeyFile` with the file's content (trimmed) under the
 * plain key, so secrets can live in files readable only by the service (systemd credentials,
 * Docker or Kubernetes secrets).
 */
export function resolveSecretFiles(input: SettingsInput, path = ""): SettingsInput {
  const out: SettingsInput = {};
  for (const [key, value] of Object.entries(input)) {
    const secret = key.endsWith("File") ? key.slice(0, -"File".length) : undefined;
    if (secret && SECRET_KEYS.has(secret) && typeof value === "string") {
      try {
        out[secret] = readFileSync(value, "utf8").trim();
      } catch (error) {
        throw new ConfigError(`${path}${key}: cannot read ${value}: ${(error as Error).message}`);
      }
    } else if (isObject(value)) {
      out[key] = resolveSecretFiles(value, `${path}${key}.`);
    } else if (Array.isArray(value)) {
      out[key] = value.map((item, i) =>
        isObject(item) ? resolveSecretFiles(item, `${path}${key}.${i}.`) : item,
      );
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Keys holding URLs (`url`, `brokerWsUrl`, ...), which may carry a password of their own. */
const URL_KEY = /url$/i;

/** A copy safe to print or publish: every secret, and every password inside a URL, replaced by `***`. */
export function maskSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(maskSecrets) as T;
  if (!isObject(value)) return value;
  const out: SettingsInput = {};
  for (const [key, item] of Object.entries(value)) {
    if (SECRET_KEYS.has(key) && item !== undefined) out[key] = "***";
    else if (URL_KEY.test(key) && typeof item === "string") out[key] = redactUrl(item);
    else out[key] = maskSecrets(item);
  }
  return out as T;
}

function isObject(value: unknown): value is SettingsInput {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}
