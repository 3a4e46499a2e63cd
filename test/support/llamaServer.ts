import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

/** llama.cpp's server as built for tests (../shared/bin/README.md); LLMQTT_LLAMA_SERVER overrides it. */
export const LLAMA_SERVER =
  process.env.LLMQTT_LLAMA_SERVER ??
  fileURLToPath(new URL("../../../../shared/bin/llama-server", import.meta.url));

const MODELS = fileURLToPath(new URL("../../../../shared/models/", import.meta.url));

/** The tiny test models (../shared/models/README.md). */
export const TEST_MODELS = {
  /** Qwen3-style chat template: system role, enable_thinking, plain chat and streaming. */
  chat: `${MODELS}stories260K-qwen3-chat.gguf`,
  /** Functionary template: one real tool call with tool_choice "required"; HTTP 500 otherwise. */
  tools: `${MODELS}stories260K-functionary-tools.gguf`,
} as const;

/**
 * Why the real-server tests cannot run here, or false. In CI (`CI=true`) they always run, so a
 * missing binary or model fails there instead of passing silently.
 */
export function llamaServerSkip(): string | false {
  if (process.env.CI === "true") return false;
  if (!existsSync(LLAMA_SERVER)) return `${LLAMA_SERVER} is missing`;
  if (!existsSync(TEST_MODELS.chat)) return `${TEST_MODELS.chat} is missing`;
  return false;
}

export interface LlamaServerOptions {
  model?: keyof typeof TEST_MODELS;
  /** Total context (`-c`); each slot gets ctx / parallel, at most the model's 2048. */
  ctx?: number;
  parallel?: number;
  /** Resolve as soon as the process runs, before /health says the model is loaded. */
  noWait?: boolean;
  args?: string[];
}

/** One `llama-server` child process on a free port, stopped with stop(). */
export class LlamaServer {
  private output = "";
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    const keep = (chunk: Buffer) => {
      // The end of the log is what explains a failure; slot selection lines are read by tests.
      this.output = (this.output + chunk.toString("utf8")).slice(-200_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  static async start(options: LlamaServerOptions = {}): Promise<LlamaServer> {
    const port = await freePort();
    const args = [
      ...["-m", TEST_MODELS[options.model ?? "chat"], "--host", "127.0.0.1", "--port", String(port)],
      ...["-c", String(options.ctx ?? 4096), "--parallel", String(options.parallel ?? 2)],
      ...["--jinja", "-t", "1", ...(options.args ?? [])],
    ];
    const child = spawn(LLAMA_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    const server = new LlamaServer(child, port);
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", resolve);
    });
    if (spawned) throw new Error(`cannot start ${LLAMA_SERVER}: ${spawned.message}`);
    if (!options.noWait) await server.waitReady();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Everything the server logged so far (last 200 kB). */
  get log(): string {
    return this.output;
  }

  /** Resolves once GET /health answers 200. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null) {
        throw new Error(`llama-server exited with ${this.child.exitCode}:\n${this.output.slice(-2000)}`);
      }
      const status = await this.healthStatus();
      if (status === 200) return;
      if (Date.now() > end) throw new Error(`llama-server not ready in ${timeoutMs} ms (last: ${status})`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** The HTTP status of GET /health, or "refused" while nothing listens yet. */
  async healthStatus(): Promise<number | "refused"> {
    try {
      const res = await fetch(`${this.url}/health`);
      await res.body?.cancel();
      return res.status;
    } catch {
      return "refused";
    }
  }

  async getJson<T = Record<string, unknown>>(path: string): Promise<T> {
    const res = await fetch(`${this.url}${path}`);
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as T;
  }

  async postJson<T = Record<string, unknown>>(
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  /** Context tokens of each slot, as /props reports it. */
  async slotContext(): Promise<number> {
    const props = await this.getJson<{ default_generation_settings: { n_ctx: number } }>("/props");
    return props.default_generation_settings.n_ctx;
  }

  /** Slots currently generating, from GET /slots. */
  async busySlots(): Promise<number> {
    const slots = await this.getJson<{ is_processing: boolean }[]>("/slots");
    return slots.filter((slot) => slot.is_processing).length;
  }

  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
