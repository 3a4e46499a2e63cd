import { InvalidArgumentError, Option } from "commander";
import { envName, settingSpecs, type SettingSpec } from "./catalog.js";
import { readConfigFile, resolveSecretFiles } from "./file.js";
import { buildSettings, mergeInputs, type SettingsInput } from "./load.js";
import type { Settings } from "./schema.js";

/**
 * The `serve` flags, made from the settings schema (catalog.ts): one flag per setting, each also
 * read from `LLMQTT_<FLAG>` (`--redis-url` ← `LLMQTT_REDIS_URL`), each secret also from
 * `--<flag>-file` / `LLMQTT_<FLAG>_FILE`.
 */

/** Where commander found an option's value: "cli", "env", "default" or undefined. */
export type ValueSource = (attribute: string) => string | undefined;

export function parseBoolean(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: "${value}"`);
  return n;
}

/** `--projects maze driving`, `--projects maze,driving`, repeated flags and `LLMQTT_PROJECTS="maze driving"`. */
function parseList(value: string, previous: unknown): string[] {
  const earlier = Array.isArray(previous) ? (previous as string[]) : [];
  return [...earlier, ...value.split(/[\s,]+/).filter(Boolean)];
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not valid JSON: ${(error as Error).message}`);
  }
}

const PARSERS: Record<SettingSpec["kind"], ((value: string, previous: unknown) => unknown) | undefined> = {
  string: undefined,
  number: parseNumber,
  boolean: parseBoolean,
  list: parseList,
  json: parseJson,
};

export function serveOptions(): Option[] {
  return settingSpecs().flatMap(optionsFor);
}

function optionsFor(spec: SettingSpec): Option[] {
  const value = new Option(`${spec.flag} ${spec.arg}`, helpText(spec))
    .env(spec.env)
    .helpGroup(`${spec.group}:`);
  const parse = PARSERS[spec.kind];
  if (parse) value.argParser(parse);
  if (!spec.secret) return [value];
  const file = new Option(`${secretFileFlag(spec)} <file>`, `read ${spec.flag} from this file (recommended)`)
    .env(envName(secretFileFlag(spec)))
    .helpGroup(`${spec.group}:`);
  return [value, file];
}

function helpText(spec: SettingSpec): string {
  if (spec.default === undefined) return spec.description;
  const shown = Array.isArray(spec.default) ? spec.default.join(" ") : String(spec.default);
  return `${spec.description} (default: ${shown})`;
}

function secretFileFlag(spec: SettingSpec): string {
  return `${spec.flag}-file`;
}

/** `--config <file>`: a YAML or JSON file holding any part of the settings. */
export function configOption(): Option {
  return new Option(
    "--config <file>",
    "settings file, YAML or JSON (flags and LLMQTT_* variables win over it)",
  ).env("LLMQTT_CONFIG");
}

/**
 * Accepts `--server_url`, `--skip_thinking False` and the original gateway's other names
 * (`aliases` in the schema's flag metadata) as their documented form.
 */
export function normalizeArgv(args: readonly string[]): string[] {
  const aliases = new Map(settingSpecs().flatMap((spec) => spec.aliases.map((alias) => [alias, spec.flag])));
  return args.map((arg) => {
    if (!arg.startsWith("--")) return arg;
    const eq = arg.indexOf("=");
    const name = (eq === -1 ? arg : arg.slice(0, eq)).replaceAll("_", "-");
    const rest = eq === -1 ? "" : arg.slice(eq);
    return (aliases.get(name) ?? name) + rest;
  });
}

/**
 * Defaults < config file < environment < flags, each source's secret files read, validated.
 * Without `sourceOf` every option counts as a flag.
 */
export function settingsFromOptions(
  options: Record<string, unknown>,
  sourceOf: ValueSource = () => "cli",
): Settings {
  const file = typeof options.config === "string" ? readConfigFile(options.config) : {};
  const environment = flagsToSettings(options, (attribute) => sourceOf(attribute) === "env");
  const flags = flagsToSettings(options, (attribute) => sourceOf(attribute) !== "env");
  return buildSettings(mergeInputs(...[file, environment, flags].map((input) => resolveSecretFiles(input))));
}

/** Turns commander's parsed options (those `include` accepts) into a nested settings input. */
export function flagsToSettings(
  options: Record<string, unknown>,
  include: (attribute: string) => boolean = () => true,
): SettingsInput {
  const input: SettingsInput = {};
  const take = (flag: string, path: string) => {
    const attribute = attributeName(flag);
    if (options[attribute] !== undefined && include(attribute)) setPath(input, path, options[attribute]);
  };
  for (const spec of settingSpecs()) {
    take(spec.flag, spec.path);
    if (spec.secret) take(secretFileFlag(spec), `${spec.path}File`);
  }
  poolFromServerUrls(input);
  // The original's --enable_debug_logging also meant debug logs, unless a level is given.
  if (include("enableDebugLogging") && options.enableDebugLogging === true && options.logLevel === undefined)
    setPath(input, "logging.level", "debug");
  return input;
}

/** Several `--server-url` values make a pool; one stays the plain server setting. */
function poolFromServerUrls(input: SettingsInput): void {
  const server = input.server as SettingsInput | undefined;
  if (!Array.isArray(server?.url)) return;
  const urls = server.url as string[];
  if (urls.length > 1) input.backends = urls.map((url) => ({ url }));
  server.url = urls[0];
}

/**
 * Secrets given as flags, which every user of the machine can read in the process list. A URL
 * setting counts only when it holds a password.
 */
export function secretsOnCommandLine(options: Record<string, unknown>, sourceOf: ValueSource): string[] {
  return settingSpecs()
    .filter((spec) => spec.secret && sourceOf(attributeName(spec.flag)) === "cli")
    .filter((spec) => !/url$/i.test(spec.path) || urlHasPassword(options[attributeName(spec.flag)]))
    .map((spec) => spec.flag);
}

/** The warning for one secret flag, naming the safer ways to give it. */
export function secretFlagWarning(flag: string): string {
  return `${flag} is visible to every user of this machine in the process list; use ${flag}-file or ${envName(flag)} instead`;
}

function urlHasPassword(value: unknown): boolean {
  const urls = Array.isArray(value) ? value : [value];
  return urls.some((url) => typeof url === "string" && URL.canParse(url) && new URL(url).password !== "");
}

function attributeName(flag: string): string {
  return new Option(flag).attributeName();
}

function setPath(target: SettingsInput, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as SettingsInput;
  }
  node[keys[keys.length - 1] as string] = value;
}
