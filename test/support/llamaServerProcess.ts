import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { freePort } from "./brokers.js";

/**
 * A minimal starter for ../shared/bin/llama-server with the tiny chat model, until the real-server
 * suite's harness (branch realserver) is on main.
 */

export const LLAMA_SERVER =
  process.env.LLMQTT_LLAMA_SERVER ??
  fileURLToPath(new URL("../../../../shared/bin/llama-server", import.meta.url));

export const CHAT_MODEL = fileURLToPath(
  new URL("../../../../shared/models/stories260K-qwen3-chat.gguf", import.meta.url),
);

/** Why the tests cannot run here, or false; in CI they always run, so a missing binary fails there. */
export function llamaServerSkip(): string | false {
  if (process.env.CI === "true") return false;
  if (!existsSync(LLAMA_SERVER)) return `${LLAMA_SERVER} is missing`;
  if (!existsSync(CHAT_MODEL)) return `${CHAT_MODEL} is missing`;
  return false;
}

export class LlamaServerProcess {
  private output = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-20_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
  }

  /** Starts the server (`ctx` tokens shared by `parallel` slots) and waits until /health says ready. */
  static async start(options: { ctx?: number; parallel?: number } = {}): Promise<LlamaServerProcess> {
    const port = await freePort();
    const args = [
      ...["-m", CHAT_MODEL, "--host", "127.0.0.1", "--port", String(port), "--jinja", "-t", "1"],
      ...["-c", String(options.ctx ?? 4096), "--parallel", String(options.parallel ?? 1)],
    ];
    const child = spawn(LLAMA_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    const server = new LlamaServerProcess(child, port);
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    try {
      await server.waitReady();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async waitReady(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.child.exitCode !== null) throw new Error(`llama-server exited:\n${this.output}`);
      const status = await fetch(`${this.url}/health`).then(
        async (res) => (await res.body?.cancel(), res.status),
        () => 0,
      );
      if (status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`llama-server not ready within ${timeoutMs} ms:\n${this.output}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
