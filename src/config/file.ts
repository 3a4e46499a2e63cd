import { readFileSync } from "node:fs";
import { extname } from "node:path";
import type * as Yaml from "yaml";
import { loadOnDemand } from "../onDemand.js";
import { redactUrl } from "../observability/redact.js";
import { secretPaths } from "./catalog.js";
import { ConfigError, type SettingsInput } from "./load.js";

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
 * Replaces every `<secret>File` (`passwordFile`, `apiKeyFile`, `urlFile` of Redis: the secrets
 * the schema marks) with the file's content, trimmed, under the plain key, so secrets can live in
 * files readable only by the service (systemd credentials, Docker or Kubernetes secrets).
 */
export function resolveSecretFiles(input: SettingsInput, path: string[] = []): SettingsInput {
  const out: SettingsInput = {};
  for (const [key, value] of Object.entries(input)) {
    const secret = key.endsWith("File") ? key.slice(0, -"File".length) : "";
    if (typeof value === "string" && isSecretPath([...path, secret])) {
      if (input[secret] !== undefined) {
        throw new ConfigError(`${dotted(path, secret)}: give either ${secret} or ${key}, not both`);
      }
      out[secret] = readSecretFile(value, dotted(path, key));
    } else if (isObject(value)) {
      out[key] = resolveSecretFiles(value, [...path, key]);
    } else if (Array.isArray(value)) {
      out[key] = value.map((item, i) =>
        isObject(item) ? resolveSecretFiles(item, [...path, key, String(i)]) : item,
      );
    } else {
      out[key] = value;
    }
  }
  return out;
}

function readSecretFile(file: string, setting: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (error) {
    throw new ConfigError(`${setting}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Whether the schema marks this path a secret; list indices match its `*`. */
function isSecretPath(path: string[]): boolean {
  return secretPaths().has(path.map((key) => (/^\d+$/.test(key) ? "*" : key)).join("."));
}

function dotted(path: string[], key: string): string {
  return [...path, key].join(".");
}

/** Keys holding URLs (`url`, `brokerWsUrl`, ...), which may carry a password of their own. */
const URL_KEY = /url$/i;

/** Names of the schema's secrets (`password`, `apiKey`, ...), masked wherever they appear. */
function secretKeys(): Set<string> {
  secretKeyNames ??= new Set([...secretPaths()].map((path) => path.slice(path.lastIndexOf(".") + 1)));
  return secretKeyNames;
}
let secretKeyNames: Set<string> | undefined;

/** A copy safe to print or publish: every secret, and every password inside a URL, replaced by `***`. */
export function maskSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(maskSecrets) as T;
  if (!isObject(value)) return value;
  const out: SettingsInput = {};
  for (const [key, item] of Object.entries(value)) {
    if (URL_KEY.test(key) && typeof item === "string") out[key] = redactUrl(item);
    else if (secretKeys().has(key) && item !== undefined) out[key] = "***";
    else out[key] = maskSecrets(item);
  }
  return out as T;
}

function isObject(value: unknown): value is SettingsInput {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}
