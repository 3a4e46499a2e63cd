import type { Logger } from "pino";
import type { ServerSettings } from "../config/schema.js";
import { OpenAICompatibleBackend, type OpenAIBackendOptions } from "./openaiBackend.js";
import { BackendPool, type PoolOptions } from "./pool.js";

export interface ServerPoolOptions {
  /** Passed to every member. */
  backend?: OpenAIBackendOptions;
  pool?: Omit<PoolOptions, "defaultSlots" | "logger">;
}

/**
 * A pool of OpenAI-compatible servers. A server makes one attempt per call while another could
 * take it over (the pool fails over at once); the last one left keeps its retries with backoff.
 */
export function createServerPool(
  servers: ServerSettings[],
  defaultSlots: number,
  logger: Logger,
  options: ServerPoolOptions = {},
): BackendPool {
  const members = servers.map((server) => ({
    backend: new OpenAICompatibleBackend(server, logger, { ...options.backend }),
    ...(server.weight !== undefined ? { weight: server.weight } : {}),
    ...(server.slots !== undefined ? { slots: server.slots } : {}),
  }));
  return new BackendPool(members, { ...options.pool, defaultSlots, logger });
}
