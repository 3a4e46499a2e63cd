import { stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ChatWrapper, Llama, LlamaContext, LlamaLogLevel, LlamaModel } from "node-llama-cpp";
import type { Logger } from "pino";

/** The node-llama-cpp module, loaded on first use only. */
export type NodeLlamaCpp = typeof import("node-llama-cpp");

export const INSTALL_HINT =
  "install node-llama-cpp to use --model (it is an optional dependency: npm install node-llama-cpp)";

const DEFAULT_CONTEXT_SIZE = 4096;

/**
 * Imports node-llama-cpp. Only `--model` users pay for loading it, and a missing optional install
 * gives one clear error instead of a module-resolution stack trace.
 */
export async function importNodeLlamaCpp(
  importer: () => Promise<unknown> = () => import("node-llama-cpp"),
): Promise<NodeLlamaCpp> {
  try {
    return (await importer()) as NodeLlamaCpp;
  } catch (err) {
    if (isMissingPackage(err)) throw new Error(INSTALL_HINT, { cause: err });
    throw new Error(`node-llama-cpp failed to load: ${errorText(err)}`, { cause: err });
  }
}

function isMissingPackage(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    /['"]node-llama-cpp['"]/.test(errorText(err))
  );
}

/**
 * Threads for generation. On a 2-core machine llama.cpp's own default (more threads than cores)
 * made the test model about 100x slower than one thread; half the logical CPUs leaves room for
 * the event loop and does not oversubscribe SMT siblings.
 */
export function defaultThreads(cpus: number = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cpus / 2));
}

/** Where `hf:` models are downloaded to when downloads are allowed. */
export function defaultModelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache");
  return path.join(base, "llmqtt", "models");
}

export function isRemoteModel(modelPath: string): boolean {
  return /^(hf:|https?:\/\/)/i.test(modelPath);
}

/**
 * Checks a local model path before anything is loaded, or refuses a remote one unless downloads
 * are allowed. Returns the absolute path of a local file; remote models are resolved later.
 */
export async function checkModelPath(modelPath: string, allowDownload: boolean): Promise<string | undefined> {
  if (isRemoteModel(modelPath)) {
    if (!allowDownload) {
      throw new Error(
        `refusing to download model "${modelPath}": downloads are off; allow them explicitly ` +
          "(allowDownload) or download the .gguf file yourself and pass its path",
      );
    }
    return undefined;
  }
  const absolute = path.resolve(modelPath);
  const info = await stat(absolute).catch(() => undefined);
  if (!info) throw new Error(`model file not found: ${absolute}`);
  if (!info.isFile()) throw new Error(`model path is not a file: ${absolute}`);
  return absolute;
}

export interface RuntimeSettings {
  modelPath: string;
  slots: number;
  contextSize?: number;
  threads: number;
  gpu: false | "auto";
  modelCacheDir: string;
  /** Hugging Face or a mirror, for `hf:` models. */
  hfEndpoint: string;
}

/** A loaded model with one context holding `slots` sequences, and its chat templates. */
export interface LlamaRuntime {
  lib: NodeLlamaCpp;
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  /** Tokens per sequence, as llama.cpp actually allocated them. */
  contextSize: number;
  /** The model's chat template with thinking on and off. */
  wrappers: { thinking: ChatWrapper; plain: ChatWrapper };
}

export async function loadRuntime(
  lib: NodeLlamaCpp,
  settings: RuntimeSettings,
  logger: Logger,
  localPath: string | undefined,
): Promise<LlamaRuntime> {
  const modelPath =
    localPath ??
    (await lib.resolveModelFile(settings.modelPath, {
      directory: settings.modelCacheDir,
      download: "auto",
      cli: false,
      endpoints: { huggingFace: settings.hfEndpoint },
    }));
  const llama = await lib.getLlama({
    gpu: settings.gpu,
    // Never compile or fetch llama.cpp at run time: only the prebuilt binaries from npm are used.
    build: "never",
    skipDownload: true,
    maxThreads: settings.threads,
    logLevel: lib.LlamaLogLevel.warn,
    logger: (level, message) => logLlamaCpp(logger, level, message),
  });
  let model: LlamaModel | undefined;
  try {
    model = await llama.loadModel({ modelPath });
    const contextSize = settings.contextSize ?? Math.min(DEFAULT_CONTEXT_SIZE, model.trainContextSize);
    const context = await model.createContext({ contextSize, sequences: settings.slots });
    const wrappers = resolveChatWrappers(lib, model);
    return { lib, llama, model, context, contextSize: context.contextSize, wrappers };
  } catch (err) {
    await model?.dispose().catch(() => undefined);
    await llama.dispose().catch(() => undefined);
    throw err;
  }
}

/**
 * The model's chat template (from the GGUF) with thinking off and on. Resolving is slow (node-llama-cpp
 * compares the Jinja template with every built-in wrapper, about a second), so it happens once and
 * the thinking variant is derived from the result. Wrappers with no thinking switch serve both;
 * `budgets.thoughtTokens = 0` still keeps their thoughts off.
 */
export function resolveChatWrappers(lib: NodeLlamaCpp, model: LlamaModel): LlamaRuntime["wrappers"] {
  const plain = lib.resolveChatWrapper(model, {
    customWrapperSettings: { jinjaTemplate: { reasoning: false }, qwen: { thoughts: "discourage" } },
  });
  let thinking: ChatWrapper = plain;
  if (plain instanceof lib.JinjaTemplateChatWrapper) {
    thinking = new lib.JinjaTemplateChatWrapper({
      template: plain.template,
      tokenizer: model.tokenizer,
      reasoning: true,
    });
  } else if (plain instanceof lib.QwenChatWrapper) {
    thinking = new lib.QwenChatWrapper({
      variation: plain.variation,
      keepOnlyLastThought: plain.keepOnlyLastThought,
      thoughts: "auto",
    });
  }
  return { plain, thinking };
}

export async function disposeRuntime(runtime: LlamaRuntime): Promise<void> {
  await runtime.context.dispose();
  await runtime.model.dispose();
  await runtime.llama.dispose();
}

function logLlamaCpp(logger: Logger, level: LlamaLogLevel, message: string): void {
  const text = message.trim();
  const name = String(level);
  if (!text) return;
  if (name === "fatal" || name === "error") logger.error({ source: "llama.cpp" }, text);
  else if (name === "warn") logger.warn({ source: "llama.cpp" }, text);
  else logger.debug({ source: "llama.cpp" }, text);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
