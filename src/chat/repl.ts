import { createInterface } from "node:readline";
import type { ChatSession } from "./session.js";

/**
 * The terminal loop of `llmqtt chat`. Replies go to stdout and everything else (banner, notices,
 * errors) to stderr, so `llmqtt chat < questions.txt > answers.txt` keeps only the answers. Lines
 * are handled strictly one after another: a piped script gets each reply before its next line.
 */

export interface ReplOptions {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream & { isTTY?: boolean };
  errorOutput: NodeJS.WritableStream & { isTTY?: boolean };
  timeoutMs: number;
  /** Shown in the banner. */
  brokerUrl: string;
}

export const HELP = `Commands:
  /system <prompt>   replace this session's system prompt (the conversation so far is kept)
  /clear             clear this session's history (its system prompt stays)
  /delete            forget this session on the gateway (history and system prompt)
  /project <name>    switch to another project
  /session [<id>]    switch to another session (no id: a fresh one)
  /help              show this list
  /quit              leave (Ctrl-D and Ctrl-C work too)
Anything else is sent as a message; start it with // to send a line beginning with /.`;

type Outcome = "continue" | "quit";

export async function runRepl(client: ChatSession, options: ReplOptions): Promise<void> {
  const { input, output, errorOutput } = options;
  const interactive = Boolean(input.isTTY && output.isTTY);
  const colour = (code: number, text: string) =>
    errorOutput.isTTY ? `\u001b[${code}m${text}\u001b[0m` : text;
  const say = (text: string): void => void errorOutput.write(`${colour(2, text)}\n`);
  const warn = (text: string): void => void errorOutput.write(`${colour(31, text)}\n`);

  const rl = createInterface({ input, output: interactive ? output : undefined, terminal: interactive });
  rl.setPrompt(`${client.project}> `);
  const stopping = new AbortController();
  const stop = () => {
    stopping.abort();
    rl.close();
  };
  // In a terminal readline turns Ctrl-C into its own event; with piped input it is a real signal.
  rl.on("SIGINT", stop);
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const handlers: Record<string, (arg: string) => Promise<Outcome | void>> = {
    help: async () => void say(HELP),
    quit: async () => "quit",
    exit: async () => "quit",
    system: async (prompt) => {
      if (prompt === "") return say(`system prompt: ${client.systemPrompt ?? "(the project's default)"}`);
      await client.setSystemPrompt(prompt);
      say(`system prompt of session ${client.sessionId} replaced; history kept (/clear to start afresh)`);
    },
    clear: async () => {
      await client.clear();
      say(`history of session ${client.sessionId} cleared`);
    },
    delete: async () => {
      await client.delete();
      say(`session ${client.sessionId} deleted on the gateway; the next message starts it afresh`);
    },
    project: async (name) => {
      if (name === "") return say(`project: ${client.project}`);
      client.switchProject(name);
      rl.setPrompt(`${client.project}> `);
      say(`project is now ${client.project} (session ${client.sessionId})`);
    },
    session: async (id) => {
      const session = client.switchSession(id);
      say(`session is now ${session}`);
    },
  };

  /** The reply is written as it streams in; a gateway that does not stream sends it whole. */
  const send = async (message: string): Promise<void> => {
    let written = false;
    try {
      for await (const event of client.stream(message, {
        timeoutMs: options.timeoutMs,
        signal: stopping.signal,
      })) {
        if (event.type !== "delta") continue;
        output.write(event.text);
        written = true;
      }
      output.write("\n");
    } catch (error) {
      if (written) output.write("\n");
      if (!stopping.signal.aborted) warn(`Error: ${(error as Error).message}`);
    }
  };

  const handle = async (line: string): Promise<Outcome | void> => {
    const text = line.trim();
    if (text === "") return;
    if (text.startsWith("//")) return send(text.slice(1));
    if (!text.startsWith("/")) return send(text);
    const space = text.search(/\s/);
    const name = (space === -1 ? text.slice(1) : text.slice(1, space)).toLowerCase();
    const arg = space === -1 ? "" : text.slice(space).trim();
    const handler = handlers[name];
    if (handler === undefined) return warn(`unknown command /${name}; /help lists the commands`);
    try {
      return await handler(arg);
    } catch (error) {
      warn((error as Error).message);
    }
  };

  say(
    `llmqtt chat: project ${client.project}, session ${client.sessionId}, broker ${options.brokerUrl}` +
      `\nType a message, or /help for commands.`,
  );
  try {
    if (interactive) rl.prompt();
    for await (const line of rl) {
      if ((await handle(line)) === "quit" || stopping.signal.aborted) break;
      if (interactive) rl.prompt();
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    rl.close();
    if (interactive) output.write("\n");
  }
}
