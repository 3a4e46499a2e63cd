import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CLI } from "./processes.js";
import { eventually } from "./wait.js";

/**
 * `llmqtt serve` as a child process, as an operator runs it: for tests that must show the process
 * stays alive (an unhandled rejection would end it) or how and when it exits.
 */
export interface GatewayProcess {
  readonly pid: number;
  /** The exit status (null if ended by a signal), once it has ended. */
  readonly exited: Promise<number | null>;
  alive(): boolean;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines written so far. */
  logs(): Record<string, unknown>[];
  /** Resolves with the first log line `match` accepts; rejects with the output after `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL if still running, then waits for the end. */
  kill(): Promise<void>;
}

/** A client id of its own per test, so that gateways never take over each other's session. */
export function uniqueClientId(label: string): string {
  return `llmqtt-${label}-${randomBytes(3).toString("hex")}`;
}

/** Starts `llmqtt serve <args>` with JSON logs at info level, serving the `general` project. */
export function spawnGateway(args: string[], env: NodeJS.ProcessEnv = {}): GatewayProcess {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [
      CLI,
      "serve",
      ...["--projects", "general", "--log-format", "json", "--log-level", "info"],
      ...["--session-store", "memory", "--http", "false"],
      ...args,
    ],
    { env: { ...process.env, ...env }, stdio: "pipe" },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const logs = () =>
    stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const output = () => `${stdout}${stderr}`;
  return {
    pid: child.pid!,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    output,
    logs,
    async waitForLog(match, timeoutMs = 15_000) {
      await eventually(() => logs().some(match), timeoutMs, output);
      return logs().find(match)!;
    },
    signal: (signal) => child.kill(signal),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
