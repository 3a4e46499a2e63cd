import path from "node:path";
import type { LlamaContextSequence } from "node-llama-cpp";
import type { Logger } from "pino";
import { HealthMonitor } from "./health.js";
import { generate, planTurn } from "./llamaCppGenerate.js";
import { GrammarCache } from "./llamaCppGrammar.js";
import {
  defaultModelCacheDir,
  defaultThreads,
  disposeRuntime,
  errorText,
  importNodeLlamaCpp,
  isRemoteModel,
  loadRuntime,
  type LlamaRuntime,
  type RuntimeSettings,
} from "./llamaCppRuntime.js";
import { SlotPool } from "./llamaCppSlots.js";
import { TurnControl } from "./llamaCppTurn.js";
import { DEFAULT_HF_ENDPOINT, resolveModelFile, type ModelFileOptions } from "./modelFiles.js";
import {
  BackendError,
  type BackendHealth,
  type ChatRequest,
  type ChatResult,
  type ModelBackend,
} from "./types.js";

export { defaultThreads, INSTALL_HINT } from "./llamaCppRuntime.js";

export interface LlamaCppOptions {
  /**
   * A local .gguf file, an alias from MODEL_CATALOG (downloaded into the model cache once), or
   * `hf:<user>/<repo>/<file>` (or an https URL) when `allowDownload` is set.
   */
  modelPath: string;
  /** Parallel sequences (conversations generated at once); default 1. */
  slots?: number;
  /** Tokens per sequence; default 4096, or the model's training context if that is smaller. */
  contextSize?: number;
  /** Generation threads; default half the logical CPUs (at least 1), see `defaultThreads`. */
  threads?: number;
  /** Default false (CPU only); "auto" lets node-llama-cpp use a prebuilt CUDA/Vulkan/Metal binary. */
  gpu?: false | "auto";
  /**
   * true: download what is missing; false: never download. Unset: an alias downloads when started
   * from a terminal, an `hf:`/URL model does not.
   */
  allowDownload?: boolean;
  /** Hugging Face or a mirror; default $HF_ENDPOINT, else https://huggingface.co. */
  hfEndpoint?: string;
  /** Where downloaded models are kept; default `$XDG_CACHE_HOME/llmqtt/models` (~/.cache/…). */
  modelCacheDir?: string;
}

export interface LlamaCppBackendHooks {
  /** Replaces `import("node-llama-cpp")` (tests). */
  importNodeLlamaCpp?: () => Promise<unknown>;
  /** Clock for deadlines, epoch milliseconds. */
  now?: () => number;
  /** Download settings: started from a terminal or not, the catalog, retries (tests). */
  modelFiles?: Partial<Pick<ModelFileOptions, "interactive" | "terminal" | "catalog" | "download">>;
}

// The model does not change while loaded; probing only re-reports the state and never wakes the process.
const HEALTH_INTERVAL_MS = 60_000;

/** llama.cpp inside the llmqtt process, through node-llama-cpp, loaded once at start. */
export class LlamaCppBackend implements ModelBackend {
  readonly name: string;
  private readonly settings: RuntimeSettings;
  private readonly allowDownload: boolean | undefined;
  private loading: AbortController | undefined;
  private readonly monitor: HealthMonitor;
  private readonly now: () => number;
  private state: BackendHealth = { healthy: false, detail: "model not loaded yet" };
  private runtime: LlamaRuntime | undefined;
  private pool: SlotPool<LlamaContextSequence> | undefined;
  private grammars: GrammarCache | undefined;
  private starting: Promise<void> | undefined;

  constructor(
    options: LlamaCppOptions,
    private readonly logger: Logger,
    private readonly hooks: LlamaCppBackendHooks = {},
  ) {
    const slots = options.slots ?? 1;
    positiveInteger("slots", slots);
    if (options.contextSize !== undefined) positiveInteger("contextSize", options.contextSize);
    if (options.threads !== undefined) positiveInteger("threads", options.threads);
    this.settings = {
      modelPath: options.modelPath,
      slots,
      ...(options.contextSize !== undefined ? { contextSize: options.contextSize } : {}),
      threads: options.threads ?? defaultThreads(),
      gpu: options.gpu ?? false,
      modelCacheDir: options.modelCacheDir ?? defaultModelCacheDir(),
      hfEndpoint: options.hfEndpoint ?? (process.env["HF_ENDPOINT"] || DEFAULT_HF_ENDPOINT),
    };
    this.allowDownload = options.allowDownload;
    this.now = hooks.now ?? Date.now;
    this.name = `llama.cpp:${isRemoteModel(options.modelPath) ? options.modelPath : path.basename(options.modelPath)}`;
    this.monitor = new HealthMonitor(async () => this.state, {
      intervalMs: HEALTH_INTERVAL_MS,
      logger,
      server: this.name,
    });
  }

  /**
   * Loads the model, downloading it first if it is an alias not yet in the cache. Throws only for
   * what the user must fix before anything can work: a missing model file, a download that was not
   * allowed or failed, node-llama-cpp not installed. A model that fails to load leaves the backend
   * unhealthy, with the reason in its health detail and the log.
   */
  start(): Promise<void> {
    this.starting ??= this.load().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async load(): Promise<void> {
    if (this.runtime) return;
    const localPath = await this.resolveModelFile();
    const lib = await importNodeLlamaCpp(this.hooks.importNodeLlamaCpp);
    const startedAt = Date.now();
    try {
      const runtime = await loadRuntime(lib, this.settings, this.logger, localPath);
      const sequences = Array.from({ length: this.settings.slots }, () => runtime.context.getSequence());
      this.runtime = runtime;
      this.pool = new SlotPool(sequences);
      this.grammars = new GrammarCache(runtime.llama);
      this.state = { healthy: true, slots: this.settings.slots, contextTokens: runtime.contextSize };
      this.logger.info(
        {
          model: this.settings.modelPath,
          loadMs: Date.now() - startedAt,
          slots: this.settings.slots,
          contextSize: runtime.contextSize,
          threads: this.settings.threads,
          gpu: runtime.llama.gpu,
          chatTemplate: runtime.wrappers.plain.wrapperName,
        },
        `loaded model ${this.settings.modelPath} in process`,
      );
    } catch (err) {
      const hint = err instanceof lib.NoBinaryFoundError ? `; ${NO_BINARY_HINT}` : "";
      this.state = {
        healthy: false,
        detail: `failed to load model ${this.settings.modelPath}: ${errorText(err)}${hint}`,
      };
      this.logger.error({ err, model: this.settings.modelPath }, this.state.detail);
    }
    await this.monitor.start();
  }

  private async resolveModelFile(): Promise<string | undefined> {
    this.loading = new AbortController();
    try {
      return await resolveModelFile(this.settings.modelPath, {
        cacheDir: this.settings.modelCacheDir,
        allowDownload: this.allowDownload,
        interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
        terminal: process.stderr,
        hfEndpoint: this.settings.hfEndpoint,
        logger: this.logger,
        signal: this.loading.signal,
        ...this.hooks.modelFiles,
      });
    } finally {
      this.loading = undefined;
    }
  }

  /**
   * Unloads the model; generations in progress are cut off. A download still running stops (its
   * partial file stays for the next start to resume).
   */
  async stop(): Promise<void> {
    this.loading?.abort(new Error("llmqtt is stopping"));
    this.monitor.stop();
    const runtime = this.runtime;
    if (!runtime) return;
    this.runtime = undefined;
    this.pool = undefined;
    this.grammars = undefined;
    this.state = { healthy: false, detail: "model unloaded" };
    await disposeRuntime(runtime);
  }

  health(): Readonly<BackendHealth> {
    // Once stopped (or never loaded) the monitor no longer speaks for the model.
    return this.runtime ? this.monitor.health() : this.state;
  }

  onHealthChange(listener: (health: Readonly<BackendHealth>) => void): void {
    this.monitor.onChange(listener);
  }

  async chat(request: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    const runtime = this.runtime;
    const pool = this.pool;
    const grammars = this.grammars;
    if (!runtime || !pool || !grammars) {
      throw new BackendError(
        "unreachable",
        `in-process model ${this.name} is not loaded (${this.state.detail})`,
      );
    }
    const turn = new TurnControl(request.deadline, signal, this.now);
    try {
      turn.throwIfCancelledOrTimedOut();
      const plan = planTurn(runtime, request);
      if (request.replySchema) plan.grammar = await grammars.get(request.replySchema);
      turn.throwIfCancelledOrTimedOut();
      // Prefer the slot whose cache already holds the longest part of this prompt.
      const sequence = pool.take(
        (candidate) => candidate.compareContextTokens(plan.tokens).firstDifferentIndex,
      );
      if (!sequence) {
        throw new BackendError("rate_limited", `all ${this.settings.slots} slots of ${this.name} are busy`);
      }
      try {
        return await generate(runtime, sequence, plan, request, turn);
      } finally {
        pool.give(sequence);
      }
    } catch (err) {
      turn.throwIfCancelledOrTimedOut();
      if (this.runtime !== runtime && !(err instanceof BackendError && err.code === "context_overflow")) {
        throw new BackendError("unreachable", `${this.name} was unloaded during the request`, { cause: err });
      }
      throw err;
    } finally {
      turn.dispose();
    }
  }
}

const NO_BINARY_HINT =
  "node-llama-cpp has no working prebuilt llama.cpp binary for this machine and llmqtt never builds one " +
  "at run time (build it yourself with `npx --no node-llama-cpp source download`)";

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`llama.cpp option ${name} must be a positive integer, got ${value}`);
  }
}
