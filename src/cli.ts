#!/usr/bin/env node
import { Command } from "commander";
import { registerClientCommands } from "./chat/commands.js";
import type * as Yaml from "yaml";
import {
  configOption,
  normalizeArgv,
  secretFlagWarning,
  secretsOnCommandLine,
  serveOptions,
  settingsFromOptions,
  type ValueSource,
} from "./config/flags.js";
import { maskSecrets } from "./config/file.js";
import { ConfigError } from "./config/load.js";
import { Gateway } from "./gateway.js";
import { loadOnDemand } from "./onDemand.js";
import { StartupError } from "./transport/startupErrors.js";
import { VERSION } from "./version.js";

export function buildProgram(): Command {
  const program = new Command("llmqtt")
    .description("MQTT gateway to large language models (llama.cpp llama-server, vLLM, Ollama, OpenAI).")
    .version(VERSION);

  const serve = program
    .command("serve", { isDefault: true })
    .description("connect to the MQTT broker and answer prompts from the model server (the default command)")
    .addHelpText(
      "after",
      `
Every flag can also be set by environment variable LLMQTT_<FLAG>: --server-url ← LLMQTT_SERVER_URL,
--redis-key-prefix ← LLMQTT_REDIS_KEY_PREFIX. Give secrets by --<flag>-file or the environment:
flags show in the process list. Precedence: defaults < --config file < environment < flags.
The original gateway's snake_case spellings work too (--server_url, --skip_thinking False, ...).

Example:
  llama-server -m model.gguf --jinja --parallel 4 --port 8080
  llmqtt serve --server-url http://localhost:8080 --mqtt-broker localhost --projects maze,general`,
    )
    .action(async (options: Record<string, unknown>, command: Command) => runServe(options, command));
  addSettingsOptions(serve);

  const config = program.command("config").description("check or print the settings that serve would use");
  addSettingsOptions(
    config
      .command("check")
      .description("validate the config file, environment and flags; exit 2 naming any bad setting")
      .action((options: Record<string, unknown>, command: Command) => {
        const settings = settingsFromOptions(options, sourcesOf(command));
        process.stdout.write(`configuration is valid (${settings.projects.length} projects)\n`);
      }),
  );
  addSettingsOptions(
    config
      .command("print")
      .description("print the effective settings as YAML, secrets masked")
      .action((options: Record<string, unknown>, command: Command) => {
        const yaml = loadOnDemand("yaml") as typeof Yaml;
        process.stdout.write(yaml.stringify(maskSecrets(settingsFromOptions(options, sourcesOf(command)))));
      }),
  );

  registerClientCommands(program);
  return program;
}

function addSettingsOptions(command: Command): void {
  command.addOption(configOption());
  for (const option of serveOptions()) command.addOption(option);
}

function sourcesOf(command: Command): ValueSource {
  return (attribute) => command.getOptionValueSource(attribute);
}

async function runServe(options: Record<string, unknown>, command: Command): Promise<void> {
  const gateway = new Gateway(settingsFromOptions(options, sourcesOf(command)));
  // Still accepted, as the original gateway's operators start it with --mqtt_password.
  for (const flag of secretsOnCommandLine(options, sourcesOf(command))) {
    gateway.logger.warn({ flag }, secretFlagWarning(flag));
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      gateway.logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    gateway.logger.info({ signal }, "shutting down");
    // Gateway.stop bounds every step; this is the last resort should one of them still hang.
    const limitMs = gateway.settings.shutdown.graceSec * 1000 + SHUTDOWN_MARGIN_MS;
    setTimeout(() => {
      gateway.logger.error({ limitSec: limitMs / 1000 }, "shutdown did not finish in time: exiting now");
      process.exit(1);
    }, limitMs).unref();
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        gateway.logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  try {
    await gateway.start();
  } catch (error) {
    // Stopped by a signal before it was ready: the shutdown above ends the process.
    if (!stopping) throw error;
  }
}

/** How long past the grace period a shutdown may take before the process exits regardless. */
const SHUTDOWN_MARGIN_MS = 15_000;

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(normalizeArgv(argv), { from: "user" });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof StartupError) {
      process.stderr.write(`llmqtt: ${error.message}\n`);
      process.exit(2);
    }
    // A start-up failure the user must fix (missing model file, port in use, ...): say it plainly.
    process.stderr.write(`llmqtt: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

await main(process.argv.slice(2));
