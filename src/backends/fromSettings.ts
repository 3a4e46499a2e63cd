import { modelServers } from "../config/projects.js";
import type { Settings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import { LlamaCppBackend } from "./llamaCppBackend.js";
import { BackendPool } from "./pool.js";
import { createServerPool } from "./serverPool.js";
import type { ModelBackend } from "./types.js";

/**
 * The model side from settings: `--model` in-process, else the configured servers. Every model,
 * even a single one, sits in a pool: one way to count slots and report status.
 */
export function createModelPool(settings: Settings, logger: Logger): BackendPool {
  const { defaultSlots } = settings.server;
  const inProcess = inProcessModel(settings, logger);
  return inProcess
    ? new BackendPool([{ backend: inProcess }], { defaultSlots, logger })
    : createServerPool(modelServers(settings), defaultSlots, logger);
}

/** `--model`: llama.cpp inside this process; node-llama-cpp is loaded only when this is used. */
function inProcessModel(settings: Settings, logger: Logger): ModelBackend | undefined {
  const { path, slots, contextSize, threads, gpu, allowDownload, cacheDir, hfEndpoint } = settings.model;
  if (!path) return undefined;
  return new LlamaCppBackend(
    {
      modelPath: path,
      slots,
      ...(allowDownload !== undefined ? { allowDownload } : {}),
      ...(hfEndpoint ? { hfEndpoint } : {}),
      gpu: gpu === "auto" ? "auto" : false,
      ...(contextSize ? { contextSize } : {}),
      ...(threads ? { threads } : {}),
      ...(cacheDir ? { modelCacheDir: cacheDir } : {}),
    },
    logger,
  );
}
