import { Command, InvalidArgumentError, Option } from "commander";
import { flagsToSettings, serveOptions } from "../config/flags.js";
import { buildSettings } from "../config/load.js";
import { newDefaultSessionId } from "../protocol/sessionId.js";
import { brokerUrl } from "../transport/mqttTransport.js";
import { ChatSession } from "./session.js";
import { BrokerConnectError, connect as connectClient, LlmqttError } from "../client/index.js";
import { checkProject, randomId } from "../client/protocol.js";
import { runRepl } from "./repl.js";

/** `llmqtt chat` and `llmqtt ask`: talk to any gateway speaking the compatibility protocol. */

/** Exit codes of `ask`; 1 also covers a reply that is an error. */
const EXIT_NO_REPLY = 1;
const EXIT_NO_BROKER = 2;

/**
 * The same broker flags (and LLMQTT_MQTT_* variables) as `serve`, taken from its table; only the
 * help differs, because a client without a broker setting goes to localhost rather than embedding one.
 */
const BROKER_FLAGS: Record<string, string> = {
  "--mqtt-url": "full broker URL instead of host/port: mqtt://, mqtts://, ws://, wss://",
  "--mqtt-broker": "MQTT broker host (default: localhost)",
  "--mqtt-port": "MQTT broker port (default: 1883)",
  "--mqtt-username": "MQTT username",
  "--mqtt-password": "MQTT password",
};
const DEFAULT_BROKER_HOST = "localhost";

interface ClientFlags {
  project: string;
  session?: string;
  system?: string;
  timeout: number;
  [key: string]: unknown;
}

export function registerClientCommands(program: Command): void {
  const chat = program
    .command("chat")
    .description("chat with a model through an llmqtt gateway, in the terminal or from piped lines")
    .addHelpText(
      "after",
      `
Replies are printed on stdout; the banner, notices and errors on stderr. Type /help for commands.

Example:
  llmqtt chat --mqtt-broker localhost --project general`,
    )
    .action(async (options: ClientFlags) => runChat(options));
  addClientOptions(chat, "(default: a fresh chat-xxxxxx, printed at start)");

  const ask = program
    .command("ask")
    .description("send one message through an llmqtt gateway and print the reply")
    .argument("[question...]", "the message; read from stdin when omitted and stdin is not a terminal")
    .option(
      "--json",
      'print {"reply", "topic", "latencyMs", "finishReason", "usage"} instead of the bare reply',
    )
    .addHelpText(
      "after",
      `
Exit status: 0 with the reply on stdout; 1 when the reply is an error or none comes in time;
2 when the MQTT broker cannot be reached.

Example:
  llmqtt ask --project general "What is MQTT?"`,
    )
    .action(async (words: string[], options: ClientFlags & { json?: boolean }) => runAsk(words, options));
  addClientOptions(ask, "(default: a one-off session, deleted afterwards)");
}

function addClientOptions(command: Command, sessionDefault: string): void {
  command
    .addOption(
      new Option("--project <name>", "project to talk to").default("general").argParser(parseProject),
    )
    .option("--session <id>", `session id ${sessionDefault}`)
    .option("--system <prompt>", "system prompt for the session")
    .addOption(
      new Option("--timeout <seconds>", "how long to wait for each reply")
        .default(60)
        .argParser(parseSeconds),
    );
  for (const option of serveOptions()) {
    const help = option.long === undefined ? undefined : BROKER_FLAGS[option.long];
    if (help !== undefined) command.addOption(Object.assign(option, { description: help }));
  }
}

async function runAsk(words: string[], options: ClientFlags & { json?: boolean }): Promise<void> {
  const question = words.length > 0 ? words.join(" ") : await readQuestionFromStdin();
  if (question === undefined || question.trim() === "") {
    return fail(EXIT_NO_REPLY, "no question given: llmqtt ask [options] <question...>");
  }
  const ephemeral = options.session === undefined;
  const chat = await connect(options, options.session ?? newDefaultSessionId());
  if (chat === undefined) return;
  try {
    const { text, topic, latencyMs, finishReason, usage } = await chat.client.ask(
      chat.project,
      question.trim(),
      {
        sessionId: chat.sessionId,
        systemPrompt: options.system,
        timeoutMs: options.timeout * 1000,
      },
    );
    process.stdout.write(
      options.json
        ? `${JSON.stringify({ reply: text, topic, latencyMs: Math.round(latencyMs), finishReason, usage })}\n`
        : `${text}\n`,
    );
  } catch (error) {
    const message =
      error instanceof LlmqttError && error.code !== "no_reply"
        ? `Error: ${error.message}`
        : (error as Error).message;
    fail(EXIT_NO_REPLY, `llmqtt ask: ${message}`);
  } finally {
    // A one-off session would otherwise linger on the gateway until its idle timeout.
    if (ephemeral && chat.client.connected) await chat.delete().catch(() => undefined);
    await chat.client.close();
  }
}

async function runChat(options: ClientFlags): Promise<void> {
  const chat = await connect(options, options.session, 2000);
  if (chat === undefined) return;
  try {
    if (options.system !== undefined) await chat.setSystemPrompt(options.system);
    await runRepl(chat, {
      input: process.stdin,
      output: process.stdout,
      errorOutput: process.stderr,
      timeoutMs: options.timeout * 1000,
      brokerUrl: chat.client.url,
    });
  } finally {
    await chat.client.close();
  }
}

/** Undefined (with the message printed and exit code 2 set) when the broker cannot be reached. */
async function connect(
  options: ClientFlags,
  sessionId: string | undefined,
  reconnectPeriodMs = 0,
): Promise<ChatSession | undefined> {
  const mqtt = buildSettings(flagsToSettings(pickBrokerFlags(options))).mqtt;
  // Without a URL or host `serve` embeds a broker; a client goes to the usual local one.
  const url =
    brokerUrl({ ...mqtt, host: mqtt.host ?? DEFAULT_BROKER_HOST }) ?? `mqtt://${DEFAULT_BROKER_HOST}`;
  try {
    const client = await connectClient(url, {
      clientId: randomId("llmqtt-chat-", 4),
      username: mqtt.username,
      password: mqtt.password,
      protocolVersion: mqtt.protocolVersion,
      reconnectPeriodMs,
      onConnectionChange:
        reconnectPeriodMs > 0
          ? (event) =>
              process.stderr.write(
                event === "lost"
                  ? "connection to the broker lost; retrying\n"
                  : "reconnected to the broker\n",
              )
          : undefined,
    });
    return new ChatSession(client, options.project, sessionId);
  } catch (error) {
    if (!(error instanceof BrokerConnectError)) throw error;
    fail(EXIT_NO_BROKER, `llmqtt: ${error.message}`);
    return undefined;
  }
}

/** Only the broker flags, so no other option of ours can be mistaken for a serve setting. */
function pickBrokerFlags(options: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(BROKER_FLAGS).map((flag) => new Option(flag).attributeName());
  return Object.fromEntries(names.map((name) => [name, options[name]]));
}

function fail(code: number, message: string): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = code;
}

async function readQuestionFromStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseProject(value: string): string {
  try {
    return checkProject(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a positive number of seconds, got "${value}"`);
  }
  return n;
}
