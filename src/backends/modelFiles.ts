import { mkdir, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { logProgress, terminalProgress, type TerminalStream } from "./downloadProgress.js";
import { lockDownload } from "./downloadLock.js";
import { downloadVerified, type DownloadOptions } from "./modelDownload.js";
import { checkModelPath } from "./llamaCppRuntime.js";

/** A model `--model <alias>` downloads: one file at a pinned revision, its size and sha256 known. */
export interface CatalogModel {
  alias: string;
  description: string;
  /** Hugging Face `<user>/<repo>`. */
  repo: string;
  /** The commit the file is pinned at, so the checksum below stays right. */
  revision: string;
  file: string;
  bytes: number;
  sha256: string;
}

/**
 * Small chat models that run on a laptop CPU. Sizes and checksums are the files' Git LFS object
 * ids at these revisions.
 */
export const MODEL_CATALOG: readonly CatalogModel[] = [
  {
    alias: "qwen3-0.6b",
    description: "Qwen3 0.6B, Q8_0 (Qwen's own GGUF)",
    repo: "Qwen/Qwen3-0.6B-GGUF",
    revision: "23749fefcc72300e3a2ad315e1317431b06b590a",
    file: "Qwen3-0.6B-Q8_0.gguf",
    bytes: 639_446_688,
    sha256: "9465e63a22add5354d9bb4b99e90117043c7124007664907259bd16d043bb031",
  },
  {
    alias: "qwen3-0.6b-q4",
    description: "Qwen3 0.6B, Q4_0 (ggml-org)",
    repo: "ggml-org/Qwen3-0.6B-GGUF",
    revision: "b5f37287796e5be0ea3dab2e7430873fb3f73e49",
    file: "Qwen3-0.6B-Q4_0.gguf",
    bytes: 428_970_080,
    sha256: "da2572f16c06133561ce56accaa822216f2391ef4d37fba427801cd6736417d4",
  },
  {
    alias: "qwen3-1.7b",
    description: "Qwen3 1.7B, Q4_K_M (ggml-org)",
    repo: "ggml-org/Qwen3-1.7B-GGUF",
    revision: "daeb8e2d528a760970442092f6bf1e55c3b659eb",
    file: "Qwen3-1.7B-Q4_K_M.gguf",
    bytes: 1_282_439_264,
    sha256: "d2387ca2dbfee2ffabce7120d3770dadca0b293052bc2f0e138fdc940d9bc7b5",
  },
  {
    alias: "qwen3-1.7b-q8",
    description: "Qwen3 1.7B, Q8_0 (Qwen's own GGUF)",
    repo: "Qwen/Qwen3-1.7B-GGUF",
    revision: "90862c4b9d2787eaed51d12237eafdfe7c5f6077",
    file: "Qwen3-1.7B-Q8_0.gguf",
    bytes: 1_834_426_016,
    sha256: "061b54daade076b5d3362dac252678d17da8c68f07560be70818cace6590cb1a",
  },
];

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export function findCatalogModel(
  name: string,
  catalog: readonly CatalogModel[] = MODEL_CATALOG,
): CatalogModel | undefined {
  return catalog.find((model) => model.alias === name.toLowerCase());
}

export function catalogModelUrl(model: CatalogModel, endpoint: string = DEFAULT_HF_ENDPOINT): string {
  return `${endpoint.replace(/\/+$/, "")}/${model.repo}/resolve/${model.revision}/${model.file}`;
}

export interface ModelFileOptions {
  /** Where downloaded models are kept. */
  cacheDir: string;
  /** true: download; false: never; unset: an alias downloads when started from a terminal. */
  allowDownload: boolean | undefined;
  /** Started from a terminal: a person sees the progress bar and can interrupt. */
  interactive: boolean;
  /** Hugging Face or a mirror of it. */
  hfEndpoint: string;
  logger: Logger;
  /** Where the progress bar is drawn when interactive. */
  terminal?: TerminalStream;
  signal?: AbortSignal;
  /** Replaces MODEL_CATALOG (tests). */
  catalog?: readonly CatalogModel[];
  download?: Pick<DownloadOptions, "attempts" | "retryDelayMs" | "stallTimeoutMs">;
}

/**
 * The file `--model` names: an alias is fetched into the cache once and found there afterwards
 * (with no request); a local path is checked. Returns undefined for `hf:`/URL models, which
 * node-llama-cpp resolves when they are allowed.
 */
export async function resolveModelFile(spec: string, options: ModelFileOptions): Promise<string | undefined> {
  const known = findCatalogModel(spec, options.catalog);
  if (known) return cachedOrDownloaded(known, options);
  try {
    return await checkModelPath(spec, options.allowDownload === true);
  } catch (err) {
    if (/[/\\]|\.gguf$/i.test(spec)) throw err;
    const aliases = (options.catalog ?? MODEL_CATALOG).map((model) => model.alias).join(", ");
    throw new Error(`${(err as Error).message} (nor is it a model llmqtt can download: ${aliases})`, {
      cause: err,
    });
  }
}

/** Why an alias may not be downloaded now, or undefined when it may. */
export function downloadRefusal(
  model: CatalogModel,
  allowDownload: boolean | undefined,
  interactive: boolean,
): string | undefined {
  if (allowDownload === true || (allowDownload === undefined && interactive)) return undefined;
  const why =
    allowDownload === false
      ? "downloads are switched off (allowDownload: false)"
      : "llmqtt was not started from a terminal; allow it with --allow-download (LLMQTT_ALLOW_DOWNLOAD=true)";
  return (
    `model ${model.alias} (${model.file}, ${megabytes(model.bytes)} MB) is not in the model cache ` +
    `and ${why}, or download ${catalogModelUrl(model)} yourself and pass its path`
  );
}

async function cachedOrDownloaded(model: CatalogModel, options: ModelFileOptions): Promise<string> {
  const destination = path.join(options.cacheDir, model.file);
  if (await isCached(destination, model)) return destination;
  const refusal = downloadRefusal(model, options.allowDownload, options.interactive);
  if (refusal) throw new Error(refusal);
  await mkdir(options.cacheDir, { recursive: true });
  const { logger, signal } = options;
  const release = await lockDownload(destination, {
    ...(signal ? { signal } : {}),
    onWait: () =>
      logger.info(
        { model: model.alias, cacheDir: options.cacheDir },
        `another process is downloading model ${model.alias} into ${options.cacheDir}; waiting for it`,
      ),
    onLost: (err) =>
      logger.warn({ model: model.alias, err: err.message }, "lost the lock on the model download"),
  }).catch((err: unknown) => {
    throw signal?.aborted ? stopped(model, err) : err;
  });
  try {
    // Another process may have finished it while this one waited for the lock.
    if (await isCached(destination, model)) return destination;
    await download(model, destination, options);
    return destination;
  } finally {
    await release();
  }
}

/** Files reach their cache name only once their checksum matched (see downloadVerified). */
async function isCached(destination: string, model: CatalogModel): Promise<boolean> {
  const cached = await stat(destination).catch(() => undefined);
  return cached?.isFile() === true && cached.size === model.bytes;
}

async function download(model: CatalogModel, destination: string, options: ModelFileOptions): Promise<void> {
  const url = catalogModelUrl(model, options.hfEndpoint);
  const { logger } = options;
  logger.info(
    { model: model.alias, url, bytes: model.bytes, cacheDir: options.cacheDir },
    `downloading model ${model.alias} (${megabytes(model.bytes)} MB) into ${options.cacheDir}`,
  );
  const startedAt = Date.now();
  const progress =
    options.interactive && options.terminal
      ? terminalProgress(options.terminal, model.file)
      : logProgress(logger, model.file);
  try {
    await downloadVerified({ url, bytes: model.bytes, sha256: model.sha256 }, destination, {
      progress,
      ...(options.signal ? { signal: options.signal } : {}),
      ...options.download,
    });
  } catch (err) {
    if (!options.signal?.aborted) throw err;
    throw stopped(model, err);
  }
  logger.info(
    { model: model.alias, file: destination, downloadMs: Date.now() - startedAt },
    `downloaded model ${model.alias}, checksum verified`,
  );
}

function stopped(model: CatalogModel, cause: unknown): Error {
  return new Error(`download of model ${model.alias} stopped; the next start resumes it`, { cause });
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(0);
}
