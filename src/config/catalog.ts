import { z } from "zod";
import type { SettingCli } from "./cliMeta.js";
import { SettingsSchema } from "./schema.js";

/**
 * Every setting of the schema that takes one value, with what the command line and the
 * environment need to know about it; read from the schema itself, so a new field is a new flag.
 */
export interface SettingSpec {
  /** Dotted path in the settings object, e.g. `sessions.redis.url`. */
  path: string;
  /** How a flag's text becomes a value; `json` for arrays of objects. */
  kind: "string" | "number" | "boolean" | "list" | "json";
  description: string;
  /** The schema's default, when it has one. */
  default?: unknown;
  /** e.g. `--redis-url`: from the metadata, else spelled from the path. */
  flag: string;
  /** `LLMQTT_` and the flag's name: `LLMQTT_REDIS_URL`. */
  env: string;
  /** Placeholder in help, e.g. `<url>`. */
  arg: string;
  aliases: string[];
  secret: boolean;
  /** Help heading: the description of the section the setting is in. */
  group: string;
}

type Schema = z.core.$ZodType;

const WRAPPERS = new Set(["default", "prefault", "optional", "nullable", "readonly", "catch"]);
const TOP_LEVEL_GROUP = "General";

let specs: SettingSpec[] | undefined;
let secrets: Set<string> | undefined;

export function settingSpecs(): SettingSpec[] {
  specs ??= collect(SettingsSchema, [], TOP_LEVEL_GROUP);
  return specs;
}

/** `LLMQTT_` + the flag without its dashes, upper case: `--redis-url` → `LLMQTT_REDIS_URL`. */
export function envName(flag: string): string {
  return "LLMQTT_" + flag.replace(/^--/, "").replaceAll("-", "_").toUpperCase();
}

/**
 * Paths of every secret, arrays written `*` (`backends.*.apiKey`), including those inside
 * lists of objects that have no flag of their own.
 */
export function secretPaths(): ReadonlySet<string> {
  secrets ??= new Set(collectSecrets(SettingsSchema, []));
  return secrets;
}

function collect(schema: Schema, path: string[], group: string): SettingSpec[] {
  const { core, meta } = unwrap(schema);
  if (core._zod.def.type === "object") {
    const shape = (core as z.core.$ZodObject)._zod.def.shape;
    const heading = path.length === 0 ? group : (meta.description ?? group);
    return Object.entries(shape).flatMap(([key, field]) => collect(field, [...path, key], heading));
  }
  return [leaf(schema, path, group)];
}

function leaf(schema: Schema, path: string[], group: string): SettingSpec {
  const { core, meta, defaultValue } = unwrap(schema);
  const cli: SettingCli = meta.cli ?? {};
  const flag = cli.flag ?? "--" + path.map(kebab).join("-");
  const kind = kindOf(core, cli);
  return {
    path: path.join("."),
    kind,
    description: meta.description ?? "",
    default: defaultValue,
    flag,
    env: envName(flag),
    arg: cli.arg ?? placeholder(path[path.length - 1] ?? "", kind, core),
    aliases: cli.aliases ?? [],
    secret: cli.secret === true,
    group,
  };
}

/** The schema under its default/optional wrappers, with their metadata merged (outer wins). */
function unwrap(schema: Schema): { core: Schema; meta: z.core.GlobalMeta; defaultValue?: unknown } {
  const layers: Schema[] = [schema];
  let defaultValue: unknown;
  let node = schema;
  while (WRAPPERS.has(node._zod.def.type)) {
    const def = node._zod.def as z.core.$ZodDefaultDef;
    if (def.type === "default" && defaultValue === undefined) defaultValue = def.defaultValue;
    node = def.innerType;
    layers.push(node);
  }
  const meta = Object.assign({}, ...layers.reverse().map((layer) => z.globalRegistry.get(layer) ?? {}));
  return { core: node, meta, defaultValue };
}

function kindOf(core: Schema, cli: SettingCli): SettingSpec["kind"] {
  if (cli.list) return "list";
  const type = core._zod.def.type;
  if (type === "boolean") return "boolean";
  if (type === "number" || numberLiterals(core) !== undefined) return "number";
  if (type === "string" || type === "enum") return "string";
  return "json";
}

/** The values of a union of number literals (`1 | 2`); undefined for any other schema. */
function numberLiterals(core: Schema): number[] | undefined {
  const def = core._zod.def;
  if (def.type !== "union") return undefined;
  const values: unknown[] = (def as z.core.$ZodUnionDef).options.flatMap((option) =>
    option._zod.def.type === "literal"
      ? (option._zod.def as z.core.$ZodLiteralDef<number>).values
      : [undefined],
  );
  return values.every((value) => typeof value === "number") ? (values as number[]) : undefined;
}

function placeholder(key: string, kind: SettingSpec["kind"], core: Schema): string {
  const def = core._zod.def;
  if (kind === "boolean") return "[bool]";
  if (def.type === "enum") return `<${Object.keys((def as z.core.$ZodEnumDef).entries).join("|")}>`;
  const choices = numberLiterals(core);
  if (choices !== undefined) return `<${choices.join("|")}>`;
  if (kind === "list") return "<values...>";
  if (kind === "json") return "<json>";
  if (key.endsWith("Sec")) return "<seconds>";
  if (key.endsWith("Ms")) return "<ms>";
  if (/(File|Path)$/.test(key)) return "<file>";
  if (/(url|endpoint)$/i.test(key)) return "<url>";
  if (key.endsWith("Dir")) return "<dir>";
  if (/^(password|apiKey|token)$|Passphrase$/.test(key)) return "<secret>";
  if (/host$/i.test(key)) return "<address>";
  if (/(name|Id)$/.test(key)) return "<name>";
  return kind === "number" ? "<n>" : "<value>";
}

function collectSecrets(schema: Schema, path: string[]): string[] {
  const { core, meta } = unwrap(schema);
  if (meta.cli?.secret) return [path.join(".")];
  const def = core._zod.def;
  if (def.type === "object") {
    const shape = (core as z.core.$ZodObject)._zod.def.shape;
    return Object.entries(shape).flatMap(([key, field]) => collectSecrets(field, [...path, key]));
  }
  if (def.type === "array") return collectSecrets((def as z.core.$ZodArrayDef).element, [...path, "*"]);
  if (def.type === "union") {
    return (def as z.core.$ZodUnionDef).options.flatMap((option) => collectSecrets(option, path));
  }
  return [];
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => "-" + letter.toLowerCase());
}
